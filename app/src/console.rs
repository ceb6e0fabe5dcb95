//! The operator's console: `/sign-in`, and `/spaces` (the account's spaces, create one).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};
use parallax_core::api::{Joining, SpaceList, SpaceListing, SpaceView, Templates};
use serde_json::json;

use parallax_core::api::TrustNotes;

use crate::rest::{self, ApiError};

/// The bar at the top of every console page.
#[component]
pub fn Topbar() -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/spaces">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"Parallax"</h1>
            </a>
            <nav>
                <a href="/spaces">"Spaces"</a>
                <a href="/pool">"Render pool"</a>
                <form method="post" action="/v1/browser/sign-out" class="inline">
                    <button type="submit" class="link">"Sign out"</button>
                </form>
            </nav>
        </header>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.read().get("error");
    let next = move || query.read().get("next").unwrap_or_else(|| "/spaces".into());
    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"Parallax"</h1>
            </div>
        </header>
        <main class="narrow">
            <h2>"Sign in"</h2>
            <p class="hint">
                "With your account's id and key (" <code>"parallax account create"</code>
                " prints them). This browser then stays signed in for 24 hours; the key is not kept."
            </p>
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <form method="post" action="/v1/browser/sign-in" class="stack">
                <label>
                    "Account id"
                    <input name="account" autocomplete="username" required spellcheck="false" />
                </label>
                <label>
                    "Account key"
                    <input name="key" type="password" autocomplete="current-password" required />
                </label>
                <input type="hidden" name="next" value=next />
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
}

/// A call's outcome as the page shows it: not yet, the value, or why not.
pub type Loaded<T> = Option<Result<T, ApiError>>;

/// "Sign in first" for a refused call, the message otherwise.
#[component]
pub fn Failure(error: ApiError) -> impl IntoView {
    if error.signed_out() {
        view! {
            <p class="error" role="alert">
                "You are not signed in (or your session ended). " <a href="/sign-in">"Sign in"</a>
            </p>
        }
        .into_any()
    } else {
        view! { <p class="error" role="alert">{error.message}</p> }.into_any()
    }
}

#[component]
pub fn SpacesPage() -> impl IntoView {
    let spaces: RwSignal<Loaded<Vec<SpaceView>>> = RwSignal::new(None);
    let templates = RwSignal::new(vec!["default".to_string()]);
    Effect::new(move |_| {
        spawn_local(async move {
            let listed = rest::get_as::<SpaceList>("/v1/spaces").await;
            // Without `?member=`, the list is of the account's own spaces.
            let owned = |list: SpaceList| {
                list.spaces
                    .into_iter()
                    .filter_map(|listed| match listed {
                        SpaceListing::Space(space) => Some(*space),
                        SpaceListing::Membership(_) => None,
                    })
                    .collect()
            };
            spaces.set(Some(listed.map(owned)));
        });
        spawn_local(async move {
            if let Ok(listed) = rest::get_as::<Templates>("/v1/templates").await {
                let names: Vec<String> = listed.templates.into_iter().map(|t| t.name).collect();
                if !names.is_empty() {
                    templates.set(names);
                }
            }
        });
    });

    let name = RwSignal::new(String::new());
    let template = RwSignal::new("default".to_string());
    let problem = RwSignal::new(None::<ApiError>);
    let creating = RwSignal::new(false);
    let navigate = use_navigate();
    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        let space = name.get_untracked().trim().to_string();
        let body = json!({
            "template": template.get_untracked(),
            "device": "Browser tablet",
            "role": "tablet",
        });
        creating.set(true);
        problem.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            let path = format!("/v1/spaces/{space}");
            match rest::call_as::<Joining>("PUT", &path, Some(&body), None).await {
                Ok(created) => {
                    let member = &created.member;
                    rest::remember_member("tablet", &space, &member.id, &member.token);
                    navigate(&format!("/spaces/{space}"), Default::default());
                }
                Err(e) => problem.set(Some(e)),
            }
            creating.set(false);
        });
    };

    view! {
        <Topbar />
        <main class="console">
            <section class="panel">
                <h2>"New space"</h2>
                <p class="hint">"A room's tablets and headsets share one space: what a tablet shows, every headset follows."</p>
                <form class="row" on:submit=create>
                    <label>
                        "Name"
                        <input
                            name="name"
                            required
                            pattern="[A-Za-z0-9_\\-]{1,64}"
                            title="letters, digits, - or _"
                            placeholder="showroom"
                            prop:value=name
                            on:input=move |ev| name.set(event_target_value(&ev))
                        />
                    </label>
                    <label>
                        "Template"
                        <select name="template" on:change=move |ev| template.set(event_target_value(&ev))>
                            {move || {
                                templates
                                    .get()
                                    .into_iter()
                                    .map(|t| {
                                        let selected = t == template.get_untracked();
                                        view! { <option value=t.clone() selected=selected>{t.clone()}</option> }
                                    })
                                    .collect_view()
                            }}
                        </select>
                    </label>
                    <button type="submit" class="primary" disabled=move || creating.get()>
                        "Create space"
                    </button>
                </form>
                {move || problem.get().map(|error| view! { <Failure error /> })}
            </section>
            <section>
                <h2>"Your spaces"</h2>
                {move || match spaces.get() {
                    None => view! { <p class="empty">"Loading…"</p> }.into_any(),
                    Some(Err(error)) => view! { <Failure error /> }.into_any(),
                    Some(Ok(list)) if list.is_empty() => {
                        view! { <p class="empty">"No spaces yet: create one above."</p> }.into_any()
                    }
                    Some(Ok(list)) => {
                        view! {
                            <ul class="space-list">
                                {list.into_iter().map(|space| view! { <SpaceCard space /> }).collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                }}
            </section>
        </main>
    }
}

#[component]
fn SpaceCard(space: SpaceView) -> impl IntoView {
    let name = space.name;
    let members = space.member_count;
    let code = space.join_code;
    let showing = space.properties.selected_model.map(|m| m.to_string());
    let href = format!("/spaces/{name}");
    view! {
        <li class="space-card" data-space=name.clone()>
            <a class="space-name" href=href>{name.clone()}</a>
            <span class="meta">
                {format!("{members} member{}", if members == 1 { "" } else { "s" })}
            </span>
            <span class="meta">{showing.map_or_else(|| "nothing shown".to_string(), |m| format!("showing {m}"))}</span>
            {code.map(|code| view! { <span class="join-code" aria-label="Join code">{code}</span> })}
        </li>
    }
}

/// `/join`: a guest joins a space with its code alone, as a headset or a tablet.
#[component]
pub fn JoinPage() -> impl IntoView {
    let query = use_query_map();
    let code = RwSignal::new(query.read_untracked().get("code").unwrap_or_default());
    // `?role=tablet` for a tablet's join link; a headset otherwise (`/headset` is this page).
    let role = match query.read_untracked().get("role").as_deref() {
        Some("tablet") => "tablet",
        _ => "headset",
    };
    let device = RwSignal::new(format!("Browser {role}"));
    let role = RwSignal::new(role.to_string());
    let problem = RwSignal::new(None::<ApiError>);
    let joining = RwSignal::new(false);
    let navigate = use_navigate();
    let join = move |ev: SubmitEvent| {
        ev.prevent_default();
        let role_now = role.get_untracked();
        let body = json!({
            "code": code.get_untracked().trim(),
            "device": device.get_untracked().trim(),
            "role": role_now,
        });
        joining.set(true);
        problem.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match rest::call_as::<Joining>("POST", "/v1/browser/join", Some(&body), None).await {
                Ok(joined) => {
                    let space = joined.space.name;
                    let member = joined.member;
                    rest::remember_member(&role_now, &space, &member.id, &member.token);
                    let page = if role_now == "headset" {
                        format!("/spaces/{space}/headset")
                    } else {
                        format!("/spaces/{space}")
                    };
                    navigate(&page, Default::default());
                }
                Err(e) => problem.set(Some(e)),
            }
            joining.set(false);
        });
    };
    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"Parallax"</h1>
            </div>
            <nav>
                <a href="/sign-in">"Operator sign-in"</a>
            </nav>
        </header>
        <main class="narrow">
            <h2>"Join a space"</h2>
            <p class="hint">"With the code the room's tablet shows. No account needed."</p>
            {move || problem.get().map(|e| view! { <p class="error" role="alert">{e.message}</p> })}
            <form class="stack" on:submit=join>
                <label>
                    "Join code"
                    <input
                        name="code"
                        placeholder="7KQ-M4T-X2P"
                        autocapitalize="characters"
                        spellcheck="false"
                        autocomplete="off"
                        required
                        // The attribute fills the field before the page hydrates (a scanned link).
                        value=code.get_untracked()
                        prop:value=code
                        on:input=move |ev| code.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Name this device"
                    <input
                        name="device"
                        required
                        maxlength="128"
                        value=device.get_untracked()
                        prop:value=device
                        on:input=move |ev| device.set(event_target_value(&ev))
                    />
                </label>
                <fieldset class="choice">
                    <legend>"Join as"</legend>
                    <label class="inline">
                        <input
                            type="radio"
                            name="role"
                            value="headset"
                            checked=role.get_untracked() == "headset"
                            prop:checked=move || role.get() == "headset"
                            on:change=move |_| role.set("headset".into())
                        />
                        "Headset (shows the model)"
                    </label>
                    <label class="inline">
                        <input
                            type="radio"
                            name="role"
                            value="tablet"
                            checked=role.get_untracked() == "tablet"
                            prop:checked=move || role.get() == "tablet"
                            on:change=move |_| {
                                role.set("tablet".into());
                                if device.get_untracked() == "Browser headset" {
                                    device.set("Browser tablet".into());
                                }
                            }
                        />
                        "Tablet (chooses the model)"
                    </label>
                </fieldset>
                <button type="submit" class="primary" disabled=move || joining.get()>
                    "Join"
                </button>
            </form>
            <SecureContextNotice />
            <p class="hint">
                <a href="/trust">"First time on this device? Trust this server's certificate"</a>
            </p>
        </main>
    }
}

/// Says, on a page opened over plain http at a name other than localhost, that VR needs HTTPS,
/// with links to the https address and to the certificate authority. Browsers offer WebXR (and
/// WebCodecs) only in a secure context; nothing shows where the page is one.
#[component]
pub fn SecureContextNotice() -> impl IntoView {
    // Known only in the browser; the server renders nothing.
    let https_address = RwSignal::new(None::<String>);
    Effect::new(move || {
        let window = window();
        if window.is_secure_context() {
            return;
        }
        let location = window.location();
        let (host, path) = (
            location.host().unwrap_or_default(),
            location.pathname().unwrap_or_default(),
        );
        https_address.set(Some(format!("https://{host}{path}")));
    });
    move || {
        https_address.get().map(|address| {
            let ca = address
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(host, _)| format!("https://{host}/ca.crt"))
                .unwrap_or_else(|| "/ca.crt".into());
            view! {
                <p class="blocked insecure" role="alert">
                    "VR needs HTTPS: headsets' browsers offer it only on secure pages. Open "
                    <a href=address.clone()>{address.clone()}</a>
                    " instead (trust this server's certificate once: "
                    <a href=ca.clone()>{ca.clone()}</a>
                    ", then "
                    <a href="/trust">"how"</a>
                    ")."
                </p>
            }
        })
    }
}

/// `/trust`: how to trust the coordinator's certificate authority on each kind of device, once.
#[component]
pub fn TrustPage() -> impl IntoView {
    // What the authority may sign, and whether it replaced one devices may still trust.
    let trust: RwSignal<Option<TrustNotes>> = RwSignal::new(None);
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(answer) = rest::get_as::<TrustNotes>("/v1/trust").await {
                trust.set(Some(answer));
            }
        });
    });
    let replaced = move || trust.get().and_then(|t| t.replaced);
    let may_sign = move || trust.get().and_then(|t| t.may_sign);
    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"Parallax"</h1>
            </div>
            <nav>
                <a href="/join">"Join a space"</a>
            </nav>
        </header>
        <main class="narrow trust">
            <h2>"Trust this server, once per device"</h2>
            <p>
                "Parallax speaks HTTPS with a certificate from its own authority, made for this "
                "server. Headsets and browsers show VR only on HTTPS pages they trust, so each "
                "device trusts the authority once: download it, then follow the steps for the "
                "device. (If your IT gave Parallax a certificate of its own, devices already "
                "trust it and there is nothing to do.)"
            </p>
            <Show when=move || replaced().is_some()>
                <p class="error" role="alert" data-testid="authority-replaced">
                    "This server's certificate authority was replaced ("
                    {replaced}
                    "). Devices that trusted the old one must trust this one again: download it below and follow the steps once more."
                </p>
            </Show>
            <Show when=move || may_sign().is_some()>
                <p data-testid="authority-scope">
                    "It can sign certificates for these names only, so even its key cannot pass for any other site: "
                    <code>{may_sign}</code>
                </p>
            </Show>
            <p>
                <a class="button primary" href="/ca.crt" download="parallax-ca.crt">
                    "Download the certificate (parallax-ca.crt)"
                </a>
            </p>
            <h3>"Meta Quest"</h3>
            <ol>
                <li>"In the headset's browser, open this page and download the certificate."</li>
                <li>"Settings → Privacy & safety → Security → Install certificate: pick parallax-ca.crt."</li>
                <li>"Open the join link again: the padlock shows and Enter VR appears."</li>
            </ol>
            <h3>"Android (Pico and other Android headsets)"</h3>
            <ol>
                <li>"Download the certificate."</li>
                <li>"Settings → Security → Encryption & credentials → Install a certificate → CA certificate: pick parallax-ca.crt."</li>
            </ol>
            <h3>"iPad, iPhone, Vision Pro"</h3>
            <ol>
                <li>"Open this page in Safari and download the certificate; allow the profile."</li>
                <li>"Settings → General → VPN & Device Management: install the Parallax profile."</li>
                <li>"Settings → General → About → Certificate Trust Settings: turn on full trust for the Parallax local CA."</li>
            </ol>
            <h3>"Windows"</h3>
            <ol>
                <li>"Download the certificate and open it: Install Certificate…"</li>
                <li>"Current User → Place all certificates in: Trusted Root Certification Authorities → Finish."</li>
                <li>"Restart the browser."</li>
            </ol>
            <h3>"macOS"</h3>
            <ol>
                <li>"Download the certificate and open it: Keychain Access adds it to the login keychain."</li>
                <li>"Double-click “Parallax local CA”, Trust → When using this certificate: Always Trust."</li>
            </ol>
        </main>
    }
}
