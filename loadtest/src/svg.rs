//! A hand-written SVG line chart of p50 / p99 / p999 latency against offered rate, with the
//! p99 budget as a dashed line. Both axes are logarithmic: rates step by multiples and
//! latencies span milliseconds to seconds once earshot falls behind, and a linear axis would
//! flatten every passing step onto the floor. No plotting crate: the chart is 5 polylines.

use std::fmt::Write as _;

/// One step's point: offered rate and its latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Offered rate, events per second.
    pub rate: u64,
    /// p50, ms.
    pub p50: Option<f64>,
    /// p99, ms.
    pub p99: Option<f64>,
    /// p999, ms.
    pub p999: Option<f64>,
}

/// (name, colour, which value of a point) of one line.
type Series = (&'static str, &'static str, fn(&Point) -> Option<f64>);

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A logarithmic axis mapping [lo, hi] onto [a, b] (pixels).
struct LogAxis {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl LogAxis {
    fn new(lo: f64, hi: f64, a: f64, b: f64) -> Self {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo / 2.0, lo * 2.0)
        };
        Self { lo, hi, a, b }
    }
    fn at(&self, v: f64) -> f64 {
        let f = (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        self.a + f * (self.b - self.a)
    }
}

/// Renders the chart; `title` is escaped.
pub fn render(title: &str, points: &[Point], p99_budget_ms: f64) -> String {
    let rates: Vec<f64> = points.iter().map(|p| p.rate.max(1) as f64).collect();
    let lats: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.p50, p.p99, p.p999])
        .flatten()
        .chain([p99_budget_ms])
        .filter(|v| *v > 0.0)
        .collect();
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (rlo, rhi) = if rates.is_empty() {
        (1.0, 10.0)
    } else {
        (min(&rates) / 1.3, max(&rates) * 1.3)
    };
    // Whole decades on the latency axis, so its gridlines fall on 0.1, 1, 10, … ms.
    let ylo = 10f64.powf(min(&lats).log10().floor());
    let yhi = 10f64.powf(max(&lats).log10().ceil()).max(ylo * 10.0);
    let x = LogAxis::new(rlo, rhi, LEFT, W - RIGHT);
    let y = LogAxis::new(ylo, yhi, H - BOTTOM, TOP);

    let mut s = open_svg(title);
    // Latency gridlines, one per decade.
    let mut d = ylo;
    while d <= yhi * 1.0001 {
        let py = y.at(d);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_num(d)
        );
        d *= 10.0;
    }
    // One tick per step's rate.
    for &r in &rates {
        let px = x.at(r);
        x_tick(&mut s, px, r);
    }
    frame(&mut s, "offered rate (events/s, log scale)");
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">send → webhook latency (log scale)</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    let by = y.at(p99_budget_ms);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{by:.1}" x2="{:.1}" y2="{by:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#d62728">p99 budget {} ms</text>"##,
        W - RIGHT,
        W - RIGHT + 6.0,
        by + 4.0,
        fmt_num(p99_budget_ms)
    );
    let series: [Series; 3] = [
        ("p50", "#2ca02c", |p| p.p50),
        ("p99", "#1f77b4", |p| p.p99),
        ("p999", "#9467bd", |p| p.p999),
    ];
    for (i, (name, color, get)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64, u64, f64)> = points
            .iter()
            .filter_map(|p| get(p).map(|v| (x.at(p.rate.max(1) as f64), y.at(v), p.rate, v)))
            .collect();
        let line: Vec<String> = pts
            .iter()
            .map(|(px, py, _, _)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline class="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for (px, py, rate, v) in &pts {
            let _ = writeln!(
                s,
                r#"<circle class="{name}" cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}"><title>{name} at {rate}/s: {v:.2} ms</title></circle>"#
            );
        }
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            W - RIGHT + 8.0,
            W - RIGHT + 28.0,
            W - RIGHT + 34.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A vertical grid line at `x` with its value under the plot.
fn x_tick(s: &mut String, x: f64, value: f64) {
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        H - BOTTOM,
        H - BOTTOM + 16.0,
        fmt_num(value)
    );
}

/// The plot's border and the x axis's label under it.
fn frame(s: &mut String, x_label: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        W - RIGHT - LEFT,
        H - BOTTOM - TOP
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0,
        esc(x_label)
    );
}

/// 0.1, 1, 2.5, 10 000 → "0.1", "1", "2.5", "10k".
fn fmt_num(v: f64) -> String {
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v}")
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A horizontal line across a time series: a limit the series is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// What it is, e.g. "max_entries 20000".
    pub label: String,
    /// Its value, in the series' unit.
    pub value: f64,
}

/// Renders one series over time on linear axes (a soak's memory, a backlog's depth): time in
/// minutes along the bottom, the value up the side with `unit` after its tick labels, an
/// optional limit as a dashed line. Each point carries a tooltip with its exact value.
pub fn render_series(
    title: &str,
    unit: &str,
    points: &[(f64, f64)],
    limit: Option<&Limit>,
) -> String {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, v)| t.is_finite() && v.is_finite())
        .collect();
    let tmax = finite.iter().map(|p| p.0).fold(0.0, f64::max).max(1.0) / 60.0;
    let vmax = finite
        .iter()
        .map(|p| p.1)
        .chain(limit.map(|l| l.value))
        .fold(0.0, f64::max);
    let (step, vtop) = nice_ticks(vmax);
    let px = |t: f64| LEFT + t / 60.0 / tmax * (W - RIGHT - LEFT);
    let py = |v: f64| H - BOTTOM - v / vtop * (H - BOTTOM - TOP);

    let mut s = open_svg(title);
    let mut v = 0.0;
    while v <= vtop * 1.0001 {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v),
            esc(unit)
        );
        v += step;
    }
    let (tstep, _) = nice_ticks(tmax);
    let mut t = 0.0;
    while t <= tmax * 1.0001 {
        let x = px(t * 60.0);
        x_tick(&mut s, x, t);
        t += tstep;
    }
    frame(&mut s, "minutes since earshot started");
    if let Some(l) = limit {
        let y = py(l.value);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#d62728">{}</text>"##,
            W - RIGHT,
            W - RIGHT + 6.0,
            y + 4.0,
            esc(&l.label)
        );
    }
    let line: Vec<String> = finite
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", px(t), py(v)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline class="series" fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        line.join(" ")
    );
    for &(t, v) in &finite {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.5" fill="#1f77b4"><title>{:.0} s: {}{}</title></circle>"##,
            px(t),
            py(v),
            t,
            fmt_num(v),
            esc(unit)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A tick step of 1, 2 or 5 × 10^k giving about five ticks up to at least `max`, and the top
/// of the axis (a whole number of steps).
fn nice_ticks(max: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

/// The start of a chart: the `<svg>` element, a white background and the centred title.
fn open_svg(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_circle_per_value_and_a_well_formed_document() {
        let points = [
            Point {
                rate: 2000,
                p50: Some(1.5),
                p99: Some(4.0),
                p999: Some(9.0),
            },
            Point {
                rate: 5000,
                p50: Some(2.0),
                p99: Some(30.0),
                p999: Some(80.0),
            },
            Point {
                rate: 10000,
                p50: Some(900.0),
                p99: Some(2500.0),
                p999: None,
            },
        ];
        let svg = render("steps <case>", &points, 50.0);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 8);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("steps &lt;case&gt;"));
        assert!(svg.contains("<title>p99 at 5000/s: 30.00 ms</title>"));
        assert!(svg.contains(">10k</text>") && svg.contains(">1 ms</text>"));
        assert!(svg.contains("p99 budget 50 ms"));
        // Every opened element is closed or self-closed.
        let opens = svg.matches('<').count();
        let closes = svg.matches("</").count() + svg.matches("/>").count();
        assert_eq!(
            opens,
            2 * svg.matches("</").count() + svg.matches("/>").count()
        );
        assert!(closes > 0);
        // Higher latency is drawn higher up (smaller y).
        let cy = |title: &str| {
            let at = svg.find(title).unwrap();
            let head = &svg[..at];
            let c = head.rfind("cy=\"").unwrap() + 4;
            head[c..c + head[c..].find('"').unwrap()]
                .parse::<f64>()
                .unwrap()
        };
        assert!(cy("p99 at 10000/s") < cy("p99 at 2000/s"));
    }

    #[test]
    fn survives_a_single_point_and_no_latencies() {
        let svg = render(
            "x",
            &[Point {
                rate: 500,
                p50: None,
                p99: None,
                p999: None,
            }],
            10.0,
        );
        assert!(svg.contains("</svg>") && !svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(fmt_num(0.1), "0.1");
        assert_eq!(fmt_num(2500.0), "2500");
        assert_eq!(fmt_num(40000.0), "40k");
    }

    #[test]
    fn renders_a_series_over_time_with_its_limit() {
        let points: Vec<(f64, f64)> = (0..=12)
            .map(|i| (i as f64 * 10.0, 50.0 + i as f64))
            .collect();
        let limit = Limit {
            label: "max <60>".into(),
            value: 60.0,
        };
        let svg = render_series("rss <earshot>", " MiB", &points, Some(&limit));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 13);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("rss &lt;earshot&gt;") && svg.contains("max &lt;60&gt;"));
        assert!(svg.contains("<title>120 s: 62 MiB</title>"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let empty = render_series("x", "", &[], None);
        assert!(empty.contains("</svg>") && !empty.contains("NaN"));
        assert_eq!(nice_ticks(62.0), (20.0, 80.0));
        assert!((nice_ticks(0.0).1 - 1.0).abs() < 1e-9);
        assert_eq!(nice_ticks(20_000.0), (5_000.0, 20_000.0));
    }
}
