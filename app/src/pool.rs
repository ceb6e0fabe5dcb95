//! `/pool`: the operator's view of the render pool. Every render session of the account (size,
//! state, queue place, lease left counting down, billed minutes) with extend and stop (confirmed),
//! the pool's health per size (hosts free, busy; queue), the last hour as charts (hosts in use,
//! space event delivery, frame time), and the account's usage for a chosen period with a CSV
//! download. Refreshed every few seconds.

use leptos::prelude::*;
use leptos::task::spawn_local;
use parallax_core::api::Me;
use parallax_core::api::{
    Health, PoolHistory, PoolSample, SessionList, SessionProperties, SizeStatus, SizeUsage, Spread,
    UsageReport,
};
use serde_json::json;

use crate::chart::{LineChart, Series};
use crate::console::{Failure, Loaded, Topbar};
use crate::rest::{self, ApiError};

const API: &str = "api-version=2021-01-01";

#[derive(Clone, Copy)]
struct PoolState {
    account: RwSignal<Option<String>>,
    sessions: RwSignal<Loaded<Vec<SessionProperties>>>,
    pool: RwSignal<Vec<SizeStatus>>,
    /// Seconds since the last refresh, so lease time counts down between them.
    ticks: RwSignal<u64>,
    /// The session a stop waits to be confirmed for.
    confirming: RwSignal<Option<String>>,
    problem: RwSignal<Option<ApiError>>,
    /// `GET /v1/pool/history`'s samples, oldest first.
    history: RwSignal<Vec<PoolSample>>,
}

async fn refresh(state: PoolState) {
    let account = match state.account.get_untracked() {
        Some(account) => account,
        None => match rest::get_as::<Me>("/v1/browser/me").await {
            Ok(me) => {
                state.account.set(Some(me.account.clone()));
                me.account
            }
            Err(e) => {
                state.sessions.set(Some(Err(e)));
                return;
            }
        },
    };
    let listed = rest::get_as::<SessionList>(&format!("/accounts/{account}/sessions?{API}")).await;
    state.sessions.set(Some(listed.map(|list| list.sessions)));
    if let Ok(health) = rest::get_as::<Health>("/v1/health").await {
        state.pool.set(health.pool.unwrap_or_default());
    }
    if let Ok(history) = rest::get_as::<PoolHistory>("/v1/pool/history").await {
        state.history.set(history.samples);
    }
    state.ticks.set(0);
}

/// Minutes from the newest sample (0) back.
fn minutes_ago(samples: &[PoolSample]) -> impl Fn(&PoolSample) -> f64 {
    let newest = samples.last().map_or(0.0, |s| s.at as f64);
    move |sample| (sample.at as f64 - newest) / 60_000.0
}

/// Hosts leased and registered, per size.
fn host_series(samples: &[PoolSample]) -> Vec<Series> {
    let x = minutes_ago(samples);
    ["Standard", "Premium"]
        .into_iter()
        .flat_map(|size| {
            let count = |field: fn(&SizeStatus) -> u32| {
                samples
                    .iter()
                    .map(|s| {
                        let of_size = s.pool.iter().find(|entry| entry.size == size);
                        (x(s), of_size.map(|entry| f64::from(field(entry))))
                    })
                    .collect()
            };
            let class = if size == "Standard" {
                "standard"
            } else {
                "premium"
            };
            [
                Series {
                    label: format!("{size} in use"),
                    class,
                    points: count(|s| s.leased),
                },
                Series {
                    label: format!("{size} hosts"),
                    class: if size == "Standard" {
                        "standard dashed"
                    } else {
                        "premium dashed"
                    },
                    points: count(|s| s.hosts),
                },
            ]
        })
        .collect()
}

/// p50 and p95 of one measurement (a sample's `broadcast_ms` or `frame_ms`).
fn spread_series(samples: &[PoolSample], field: fn(&PoolSample) -> Option<Spread>) -> Vec<Series> {
    let x = minutes_ago(samples);
    let series = |label: &'static str, percentile: fn(&Spread) -> f32| Series {
        label: label.into(),
        class: label,
        points: samples
            .iter()
            .map(|s| (x(s), field(s).map(|spread| f64::from(percentile(&spread)))))
            .collect(),
    };
    vec![series("p50", |s| s.p50), series("p95", |s| s.p95)]
}

#[component]
pub fn PoolPage() -> impl IntoView {
    let state = PoolState {
        account: RwSignal::new(None),
        sessions: RwSignal::new(None),
        pool: RwSignal::new(Vec::new()),
        ticks: RwSignal::new(0),
        confirming: RwSignal::new(None),
        problem: RwSignal::new(None),
        history: RwSignal::new(Vec::new()),
    };
    let hosts = Signal::derive(move || host_series(&state.history.read()));
    let delivery = Signal::derive(move || spread_series(&state.history.read(), |s| s.broadcast_ms));
    let frames = Signal::derive(move || spread_series(&state.history.read(), |s| s.frame_ms));
    Effect::new(move |_| {
        spawn_local(refresh(state));
        #[cfg(feature = "hydrate")]
        spawn_local(async move {
            loop {
                gloo_timers::future::TimeoutFuture::new(1_000).await;
                let ticks = state.ticks.get_untracked() + 1;
                if ticks >= 5 {
                    refresh(state).await;
                } else {
                    state.ticks.set(ticks);
                }
            }
        });
    });

    view! {
        <Topbar />
        <main class="console">
            <section>
                <h2>"Render pool"</h2>
                <div class="table-wrap">
                <table class="pool-table" aria-label="Hosts per size">
                    <thead>
                        <tr>
                            <th scope="col">"Size"</th>
                            <th scope="col">"Hosts"</th>
                            <th scope="col">"Free"</th>
                            <th scope="col">"Busy"</th>
                            <th scope="col">"Starting"</th>
                            <th scope="col">"Lost"</th>
                            <th scope="col">"Most"</th>
                            <th scope="col">"Kept free"</th>
                            <th scope="col">"Queued"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            state
                                .pool
                                .get()
                                .into_iter()
                                .map(|size| {
                                    view! {
                                        <tr data-size=size.size.clone()>
                                            <th scope="row">{size.size.clone()}</th>
                                            <td>{size.hosts}</td>
                                            <td>{size.idle}</td>
                                            <td>{size.leased}</td>
                                            <td>{size.starting}</td>
                                            <td>{size.lost}</td>
                                            <td>{size.capacity}</td>
                                            <td>{size.standby}</td>
                                            <td>{size.queued}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        }}
                    </tbody>
                </table>
                </div>
                // Sizes whose hosts cannot be started (Kubernetes: their pods do not start).
                {move || {
                    state
                        .pool
                        .get()
                        .into_iter()
                        .filter_map(|size| {
                            let why = size.unavailable?;
                            Some(
                                view! {
                                    <p class="error" role="alert" data-unavailable=size.size.clone()>
                                        {format!("{} hosts cannot start: {why}", size.size)}
                                    </p>
                                },
                            )
                        })
                        .collect_view()
                }}
            </section>
            <section aria-label="Last hour">
                <h2>"Last hour"</h2>
                <div class="charts">
                    <LineChart title="Render hosts" unit="hosts" series=hosts />
                    <LineChart title="Space event delivery" unit="ms" series=delivery />
                    <LineChart title="Frame time (render + encode)" unit="ms" series=frames />
                </div>
            </section>
            <Usage state />
            <section>
                <h2>"Render sessions"</h2>
                {move || state.problem.get().map(|error| view! { <Failure error /> })}
                {move || match state.sessions.get() {
                    None => view! { <p class="empty">"Loading…"</p> }.into_any(),
                    Some(Err(error)) => view! { <Failure error /> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => {
                        view! { <p class="empty">"No render sessions are running."</p> }.into_any()
                    }
                    Some(Ok(list)) => {
                        view! {
                            <ul class="session-list">
                                {list
                                    .into_iter()
                                    .map(|session| view! { <SessionRow session state /> })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                }}
            </section>
        </main>
    }
}

/// The account's usage for a chosen period: Ready time and billed minutes per size, and the
/// same as CSV (one row per session).
#[component]
fn Usage(state: PoolState) -> impl IntoView {
    // Days as `YYYY-MM-DD`; the period runs from the start of `from` to the end of `to` (UTC).
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let usage: RwSignal<Loaded<Vec<SizeUsage>>> = RwSignal::new(None);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let day = |ms: f64| {
            String::from(js_sys::Date::new(&ms.into()).to_iso_string())
                .chars()
                .take(10)
                .collect::<String>()
        };
        let now = js_sys::Date::now();
        from.set(day(now - 29.0 * 86_400_000.0));
        to.set(day(now));
    });
    let query = move || {
        let (from, to) = (from.get(), to.get());
        (!from.is_empty() && !to.is_empty())
            .then(|| format!("{API}&from={from}T00:00:00Z&to={}", end_of(&to)))
    };
    Effect::new(move |_| {
        let (Some(account), Some(query)) = (state.account.get(), query()) else {
            return;
        };
        spawn_local(async move {
            let path = format!("/accounts/{account}/usage?{query}");
            let answer = rest::get_as::<UsageReport>(&path).await;
            usage.set(Some(answer.map(|report| report.usage)));
        });
    });
    let csv = move || {
        Some(format!(
            "/accounts/{}/usage.csv?{}",
            state.account.get()?,
            query()?
        ))
    };
    view! {
        <section aria-label="Usage">
            <h2>"Usage"</h2>
            <div class="usage-period">
                <label>
                    "From"
                    <input type="date" prop:value=from on:change=move |ev| from.set(event_target_value(&ev)) />
                </label>
                <label>
                    "To"
                    <input type="date" prop:value=to on:change=move |ev| to.set(event_target_value(&ev)) />
                </label>
                {move || csv().map(|href| view! { <a class="button" href=href download>"Download CSV"</a> })}
            </div>
            {move || match usage.get() {
                None => view! { <p class="empty">"Loading…"</p> }.into_any(),
                Some(Err(error)) => view! { <Failure error /> }.into_any(),
                Some(Ok(sizes)) => {
                    view! {
                        <table class="pool-table usage">
                            <thead>
                                <tr>
                                    <th scope="col">"Size"</th>
                                    <th scope="col">"Ready"</th>
                                    <th scope="col">"Billed minutes"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {sizes
                                    .into_iter()
                                    .map(|size| {
                                        view! {
                                            <tr>
                                                <th scope="row">{size.size}</th>
                                                <td>{clock(size.ready_seconds.round() as i64)}</td>
                                                <td>{size.billed_minutes}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// The last millisecond of a day (`YYYY-MM-DD`, UTC), RFC 3339.
fn end_of(day: &str) -> String {
    format!("{day}T23:59:59.999Z")
}

/// `3725` seconds → `1:02:05`.
fn clock(seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[component]
fn SessionRow(session: SessionProperties, state: PoolState) -> impl IntoView {
    let id = session.id;
    let status = session.status;
    let size = session.size;
    let max = i64::from(session.max_lease_time_minutes);
    let elapsed = i64::try_from(session.elapsed_time_minutes).unwrap_or(i64::MAX);
    let queue = session.queue_position;
    let device = (status == "Ready").then_some(if session.device_connected {
        "device connected"
    } else {
        "no device"
    });
    // Lease counts from Ready in whole minutes; between refreshes it counts down by the second.
    let left = move || clock((max - elapsed) * 60 - state.ticks.get() as i64);
    let confirming = {
        let id = id.clone();
        move || state.confirming.get().as_deref() == Some(id.as_str())
    };
    let (extend_id, ask_id, stop_id) = (id.clone(), id.clone(), id.clone());
    let extend = move |_| {
        let (id, account) = (
            extend_id.clone(),
            state.account.get_untracked().unwrap_or_default(),
        );
        spawn_local(async move {
            let body = json!({ "maxLeaseTimeMinutes": max + 30 });
            let path = format!("/accounts/{account}/sessions/{id}?{API}");
            match rest::call("PATCH", &path, Some(&body), None).await {
                Ok(_) => refresh(state).await,
                Err(e) => state.problem.set(Some(e)),
            }
        });
    };
    let stop = move |_| {
        let (id, account) = (
            stop_id.clone(),
            state.account.get_untracked().unwrap_or_default(),
        );
        state.confirming.set(None);
        spawn_local(async move {
            let path = format!("/accounts/{account}/sessions/{id}/:stop?{API}");
            match rest::call("POST", &path, None, None).await {
                Ok(_) => refresh(state).await,
                Err(e) => state.problem.set(Some(e)),
            }
        });
    };
    view! {
        <li class="session-row" data-session=id.clone() data-status=status.clone()>
            <span class="session-id">{id.clone()}</span>
            <span class="meta">{size}</span>
            <span class=format!("state {}", status.to_lowercase())>{status.clone()}</span>
            {queue.map(|q| view! { <span class="meta">{format!("queue #{q}")}</span> })}
            {device.map(|d| view! { <span class="meta device">{d}</span> })}
            <span class="meta lease" title="Lease time left">{left}</span>
            <span class="meta">{format!("{elapsed} min billed")}</span>
            <span class="actions">
                <button type="button" on:click=extend aria-label=format!("Extend {id} by 30 minutes")>
                    "+30 min"
                </button>
                <button
                    type="button"
                    class="danger"
                    on:click=move |_| state.confirming.set(Some(ask_id.clone()))
                    aria-label=format!("Stop {id}")
                >
                    "Stop"
                </button>
            </span>
            {move || {
                confirming()
                    .then(|| {
                        view! {
                            <div class="confirm" role="dialog" aria-label="Confirm stop">
                                <p>"Stop this session? Its device is disconnected at once."</p>
                                <button type="button" class="danger" on:click=stop.clone()>
                                    "Stop session"
                                </button>
                                <button type="button" on:click=move |_| state.confirming.set(None)>
                                    "Cancel"
                                </button>
                            </div>
                        }
                    })
            }}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn lease_time_reads_as_a_clock() {
        assert_eq!(clock(3725), "1:02:05");
        assert_eq!(clock(59), "0:00:59");
        assert_eq!(clock(-5), "0:00:00");
    }
}
