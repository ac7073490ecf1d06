//! Server-rendered SVG bar charts: they need no JavaScript and no chart library.

use proxy_core::admin::UsageCell;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<u64>,
    /// How a value reads on hover and on the value axis.
    pub format: fn(u64) -> String,
}

impl Series {
    pub fn new(name: impl Into<String>, color: &'static str, values: Vec<u64>) -> Self {
        Series {
            name: name.into(),
            color,
            values,
            format: plain,
        }
    }

    /// One value per cell, in order.
    pub fn of(
        name: impl Into<String>,
        color: &'static str,
        cells: &[UsageCell],
        value: fn(&UsageCell) -> u64,
    ) -> Self {
        Series::new(name, color, cells.iter().map(value).collect())
    }

    /// Values in millionths of a dollar ([`micro_usd`]), read as dollars.
    pub fn dollars(mut self) -> Self {
        self.format = |v| crate::live::usd(v as f64 / 1e6);
        self
    }

    /// Values in milliseconds.
    pub fn millis(mut self) -> Self {
        self.format = |v| format!("{v} ms");
        self
    }

    /// Values in microseconds.
    pub fn micros(mut self) -> Self {
        self.format = |v| format!("{v} µs");
        self
    }
}

fn plain(value: u64) -> String {
    value.to_string()
}

/// A cell's cost in millionths of a dollar, so it stacks as a whole number.
pub fn micro_usd(cell: &UsageCell) -> u64 {
    (cell.cost_usd * 1e6).round() as u64
}

/// The colours of series that are one per model or key, in rank order; "other" is
/// grey.
pub const PALETTE: [&str; 6] = ["#36c", "#3a7", "#d80", "#a5c", "#c33", "#2aa"];
pub const OTHER: &str = "#999";

/// Prompt, output, thinking and cached tokens: the stack every token chart shows.
pub fn token_series(cells: &[UsageCell]) -> [Series; 4] {
    [
        Series::of("prompt", "#36c", cells, |c| c.prompt_tokens),
        Series::of("output", "#3a7", cells, |c| c.candidates_tokens),
        Series::of("thinking", "#a5c", cells, |c| c.thoughts_tokens),
        Series::of("cached", "#aaa", cells, |c| c.cached_tokens),
    ]
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;

/// Stacked bars, one per label; each bar has a hover title with its values.
pub fn stacked_bars(aria_label: &str, labels: &[String], series: &[Series]) -> String {
    let count = labels.len().max(1);
    let totals: Vec<u64> = (0..count)
        .map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let slot = plot_w / count as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let mut svg = frame(aria_label, max, series);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = plot_h;
        let mut tip = escape(label);
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0);
            tip.push_str(&format!("\n{}: {}", escape(&s.name), (s.format)(value)));
            let h = value as f64 / max * (plot_h - 4.0);
            if h > 0.0 {
                y -= h;
                svg.push_str(&format!(
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"/>"#,
                    s.color
                ));
            }
        }
        // An invisible full-height rect carries the tooltip for the whole column.
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="0" width="{bar_w:.1}" height="{plot_h}" fill="transparent"><title>{tip}</title></rect>"#
        ));
    }
    axis_labels(&mut svg, labels, slot);
    svg.push_str("</svg>");
    svg
}

/// Lines over the same labels (p50 and p95 latency, say), a dot per value with a hover
/// title; a label with no requests is a gap in the lines, not a zero.
pub fn lines(aria_label: &str, labels: &[String], series: &[Series], present: &[bool]) -> String {
    let count = labels.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let slot = plot_w / count as f64;
    let mut svg = frame(aria_label, max, series);
    for s in series {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (i, label) in labels.iter().enumerate() {
            let here = present.get(i).copied().unwrap_or(false);
            let Some(run) = runs.last_mut() else { continue };
            if !here {
                if !run.is_empty() {
                    runs.push(Vec::new());
                }
                continue;
            }
            let value = s.values.get(i).copied().unwrap_or(0);
            let x = LEFT + slot * (i as f64 + 0.5);
            let y = plot_h - value as f64 / max * (plot_h - 4.0);
            run.push((x, y));
            svg.push_str(&format!(
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{}"><title>{} {}: {}</title></circle>"#,
                s.color,
                escape(label),
                escape(&s.name),
                (s.format)(value)
            ));
        }
        for run in runs.iter().filter(|r| r.len() > 1) {
            let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            svg.push_str(&format!(
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                points.join(" "),
                s.color
            ));
        }
    }
    axis_labels(&mut svg, labels, slot);
    svg.push_str("</svg>");
    svg
}

/// The opening `<svg>` with the value axis (0 to `max`, read as the series read
/// their values) and the baseline.
fn frame(aria_label: &str, max: f64, series: &[Series]) -> String {
    let plot_h = HEIGHT - BOTTOM;
    let format = series.first().map_or(plain as fn(u64) -> String, |s| s.format);
    format!(
        r##"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><text x="0" y="12" class="axis">{}</text><text x="0" y="{plot_h}" class="axis">0</text><line x1="{LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999"/>"##,
        escape(aria_label),
        escape(&format(max as u64))
    )
}

/// About six labels along the bottom axis.
fn axis_labels(svg: &mut String, labels: &[String], slot: f64) {
    let step = (labels.len() / 6).max(1);
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let x = LEFT + slot * i as f64;
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{}" class="axis">{}</text>"#,
            HEIGHT - 4.0,
            escape(label)
        ));
    }
}

/// The legend under a chart.
pub fn legend(series: &[Series]) -> String {
    series
        .iter()
        .map(|s| {
            format!(
                r#"<span class="legend"><i style="background:{}"></i>{}</span>"#,
                s.color,
                escape(&s.name)
            )
        })
        .collect()
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_column_per_label_and_escapes() {
        let labels = vec!["a<b".to_string(), "c".to_string()];
        let series = [Series {
            name: "requests".into(),
            color: "#36c",
            values: vec![1, 3],
            format: plain,
        }];
        let svg = stacked_bars("x", &labels, &series);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<title>").count(), 2);
    }

    #[test]
    fn lines_break_where_no_requests_were_made() {
        let labels: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        let series = [Series {
            name: "p50".into(),
            color: "#d80",
            values: vec![5, 7, 0, 9, 11],
            format: plain,
        }];
        let svg = lines("latency", &labels, &series, &[true, true, false, true, true]);
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("<title>b p50: 7</title>"), "{svg}");
    }

    #[test]
    fn dollars_read_as_dollars_on_hover_and_axis() {
        let cell = UsageCell {
            cost_usd: 0.0125,
            ..UsageCell::default()
        };
        let series = [Series::of("cost", "#36c", &[cell], micro_usd).dollars()];
        assert_eq!(series[0].values, vec![12_500]);
        let svg = stacked_bars("cost", &["x".to_string()], &series);
        assert!(svg.contains("cost: $0.0125"), "{svg}");
        assert!(svg.contains(r#"class="axis">$0.0125</text>"#), "{svg}");
    }
}
