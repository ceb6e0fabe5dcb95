//! A line chart drawn as SVG by the page itself (no chart service): the operator's last hour.

use leptos::prelude::*;

/// One line: its name in the legend, its CSS class (colour, dash), and `(x, y)` points with x in
/// minutes relative to now (−60 … 0); `None` breaks the line (nothing was measured).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub class: &'static str,
    pub points: Vec<(f64, Option<f64>)>,
}

/// The drawing's own units; it scales to the width it gets, keeping its shape.
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 160.0;
/// Room for the y labels on the left and the x labels below.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;
const MINUTES: f64 = 60.0;

/// Grid lines above the x axis.
const LINES: u32 = 4;

/// The top of the y axis: [`LINES`] steps of a round size (1, 2, 2.5 or 5 × 10ⁿ) that reach
/// `max`.
fn round_up(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return f64::from(LINES);
    }
    let least = max / f64::from(LINES);
    let scale = 10f64.powf(least.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|step| step * scale)
        .find(|step| *step >= least * (1.0 - 1e-9))
        .unwrap_or(10.0 * scale);
    step * f64::from(LINES)
}

/// `2` → "2", `2.5` → "2.5", `0.25` → "0.25".
fn tick_label(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Where `points`' newest measured value sits, marked so a line of one point still shows.
fn last_point(points: &[(f64, Option<f64>)], top: f64) -> Option<(f64, f64)> {
    let (minutes, value) = points.iter().rev().find_map(|(x, v)| Some((*x, (*v)?)))?;
    Some((x_of(minutes), y_of(value, top)))
}

fn x_of(minutes: f64) -> f64 {
    LEFT + (minutes + MINUTES) / MINUTES * (WIDTH - LEFT)
}

fn y_of(value: f64, top: f64) -> f64 {
    TOP + (1.0 - value / top) * (HEIGHT - TOP - BOTTOM)
}

/// SVG path data for `points`: a move at every start and after every gap.
fn path(points: &[(f64, Option<f64>)], top: f64) -> String {
    let mut data = String::new();
    let mut drawing = false;
    for (minutes, value) in points {
        match value {
            Some(value) => {
                let command = if drawing { 'L' } else { 'M' };
                let (x, y) = (x_of(*minutes), y_of(*value, top));
                data.push_str(&format!("{command}{x:.1},{y:.1} "));
                drawing = true;
            }
            None => drawing = false,
        }
    }
    data.trim_end().to_string()
}

/// What a screen reader hears: each line's latest value.
fn summary(title: &str, unit: &str, series: &[Series]) -> String {
    let latest: Vec<String> = series
        .iter()
        .map(|s| match s.points.iter().rev().find_map(|(_, v)| *v) {
            Some(v) => format!("{} {v:.1} {unit}", s.label),
            None => format!("{} not measured", s.label),
        })
        .collect();
    format!("{title}, last hour; now: {}", latest.join(", "))
}

#[component]
pub fn LineChart(
    title: &'static str,
    unit: &'static str,
    #[prop(into)] series: Signal<Vec<Series>>,
) -> impl IntoView {
    let top = move || {
        let max = series
            .read()
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|(_, v)| *v))
            .fold(0.0, f64::max);
        round_up(max)
    };
    let grid = move || {
        let top = top();
        (0..=LINES)
            .map(|i| {
                let share = f64::from(i) / f64::from(LINES);
                let y = TOP + (1.0 - share) * (HEIGHT - TOP - BOTTOM);
                let label = tick_label(top * share);
                view! {
                    <line class="grid" x1=LEFT x2=WIDTH y1=y y2=y />
                    <text class="tick" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">{label}</text>
                }
            })
            .collect_view()
    };
    let x_ticks = (0..=4)
        .map(|i| {
            let minutes = -60 + i * 15;
            let x = LEFT + f64::from(i) / 4.0 * (WIDTH - LEFT);
            let anchor = match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            let label = if minutes == 0 {
                "now".to_string()
            } else {
                format!("{minutes} min")
            };
            view! { <text class="tick" x=x y=HEIGHT - 4.0 text-anchor=anchor>{label}</text> }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>
                <span class="chart-title">{title} <span class="unit">{format!("({unit})")}</span></span>
                <span class="legend">
                    {move || {
                        series
                            .get()
                            .into_iter()
                            .map(|s| view! { <span class=format!("key {}", s.class)>{s.label}</span> })
                            .collect_view()
                    }}
                </span>
            </figcaption>
            <svg
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                role="img"
                aria-label=move || summary(title, unit, &series.read())
            >
                {grid}
                {x_ticks}
                {move || {
                    let top = top();
                    series
                        .get()
                        .into_iter()
                        .map(|s| {
                            let last = last_point(&s.points, top);
                            view! {
                                <path class=format!("line {}", s.class) d=path(&s.points, top) />
                                {last.map(|(x, y)| view! { <circle class=format!("dot {}", s.class) cx=x cy=y r=3 /> })}
                            }
                        })
                        .collect_view()
                }}
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_rises_in_round_steps() {
        assert_eq!(round_up(0.0), 4.0);
        assert_eq!(round_up(4.0), 4.0, "four hosts: a line per host");
        assert_eq!(round_up(3.2), 4.0);
        assert_eq!(round_up(47.0), 80.0);
        assert_eq!(round_up(100.0), 100.0);
        assert_eq!(round_up(0.07), 0.08);
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.02), "0.02");
    }

    #[test]
    fn gaps_break_the_line() {
        let points = [
            (-60.0, Some(0.0)),
            (-30.0, None),
            (-15.0, Some(1.0)),
            (0.0, Some(1.0)),
        ];
        assert_eq!(path(&points, 1.0), "M44.0,138.0 M311.0,8.0 L400.0,8.0");
    }

    #[test]
    fn screen_readers_hear_the_latest_values() {
        let series = [Series {
            label: "p95".into(),
            class: "p95",
            points: vec![(-1.0, Some(3.0)), (0.0, None)],
        }];
        assert_eq!(
            summary("Frame time", "ms", &series),
            "Frame time, last hour; now: p95 3.0 ms"
        );
    }
}
