//! The sweep's picture, drawn with `plotters` into an SVG: above, latency percentiles (log
//! scale) against offered rate, with the saturation point marked; below, delivered against
//! offered rate, beside the line where they are equal. Several sweeps (this run's and saved
//! ones) share the axes, one colour each.

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

use super::sweep::Sweep;

/// One step of a curve, latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub offered: f64,
    pub delivered: f64,
    /// p50, p90, p99, p99.9, max.
    pub latency_ms: Option<[f64; 5]>,
}

/// A sweep as drawn: its name, its parameters, its points, where it saturated.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub label: String,
    pub params: String,
    pub points: Vec<Point>,
    /// The highest rate kept up with, and the lowest not.
    pub sustained: Option<f64>,
    pub saturated: Option<f64>,
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

impl Curve {
    pub fn from_sweep(sweep: &Sweep) -> Curve {
        Curve {
            label: sweep.label.clone(),
            params: sweep.describe(),
            points: sweep
                .steps
                .iter()
                .map(|step| Point {
                    offered: step.offered,
                    delivered: step.delivered,
                    latency_ms: step
                        .latency
                        .map(|p| [p.p50, p.p90, p.p99, p.p999, p.max].map(|us| us as f64 / 1000.0)),
                })
                .collect(),
            sustained: sweep.sustained(),
            saturated: sweep.saturated_at(),
        }
    }

    /// A sweep saved by `--sweep --json`; `name` labels it if it has no label.
    pub fn from_json(json: &Value, name: &str) -> Result<Curve, String> {
        let number = |value: &Value, key: &str| value.get(key).and_then(Value::as_f64);
        let steps = json
            .get("steps")
            .and_then(Value::as_array)
            .filter(|_| json.get("mode").and_then(Value::as_str) == Some("sweep"))
            .ok_or_else(|| {
                format!("{name}: not the JSON of a sweep (a-chat bench --sweep --json)")
            })?;
        let points = steps
            .iter()
            .map(|step| {
                let latency: Option<Vec<f64>> = ["p50", "p90", "p99", "p999", "max"]
                    .iter()
                    .map(|p| number(step, &format!("latency_us_{p}")).map(|us| us / 1000.0))
                    .collect();
                Ok(Point {
                    offered: number(step, "offered_per_sec")
                        .ok_or_else(|| format!("{name}: a step without offered_per_sec"))?,
                    delivered: number(step, "delivered_per_sec").unwrap_or(0.0),
                    latency_ms: latency.map(|l| [l[0], l[1], l[2], l[3], l[4]]),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let label = json
            .get("label")
            .and_then(Value::as_str)
            .filter(|label| !label.is_empty())
            .unwrap_or(name);
        let params = super::sweep::describe(json);
        Ok(Curve {
            label: label.to_string(),
            params,
            points,
            sustained: number(json, "sustained_per_sec"),
            saturated: number(json, "saturated_per_sec"),
        })
    }
}

/// Draws `curves` into the SVG file `path`.
pub fn draw(curves: &[Curve], path: &Path) -> Result<(), String> {
    let error = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let points: Vec<&Point> = curves.iter().flat_map(|curve| &curve.points).collect();
    if points.is_empty() {
        return Err("nothing to draw: no sweep has a step".into());
    }
    let offered = points.iter().map(|p| p.offered);
    let (x_low, x_high) = (
        offered.clone().fold(f64::MAX, f64::min) / 1.3,
        offered.fold(0.0, f64::max) * 1.3,
    );
    let latencies = points.iter().filter_map(|p| p.latency_ms).flatten();
    let (y_low, y_data_high) = (
        (latencies.clone().fold(f64::MAX, f64::min) / 2.0).max(0.001),
        (latencies.fold(0.0, f64::max) * 2.0).max(0.01),
    );
    // Headroom above the data for the legend, so that it never hides a line: the legend's
    // rows (a percentile or a marker each, about 18 px) take that share of the chart's height
    // (about 400 px), on top.
    let legend_rows = if curves.len() == 1 {
        6
    } else {
        3 * curves.len()
    };
    let legend_share = ((18 * legend_rows + 24) as f64 / 400.0).min(0.7);
    let decades = (y_data_high / y_low).log10() / (1.0 - legend_share);
    let y_high = y_low * 10f64.powf(decades);
    let delivered = points.iter().map(|p| p.delivered).filter(|&d| d > 0.0);
    let (d_low, d_high) = (
        delivered.clone().fold(x_low, f64::min) / 1.3,
        delivered.fold(x_high, f64::max) * 1.3,
    );

    let root = SVGBackend::new(path, (1000, 860)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let title = match curves {
        [one] => format!("a-chat bench --sweep: {}", one.params),
        _ => format!("a-chat bench --sweep: {} runs", curves.len()),
    };
    let root = root.titled(&title, ("sans-serif", 20)).map_err(error)?;
    let (upper, lower) = root.split_vertically(500);

    let mut chart = ChartBuilder::on(&upper)
        .caption(
            "Latency from scheduled send to arrival, against offered rate",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((x_low..x_high).log_scale(), (y_low..y_high).log_scale())
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("offered rate (messages/s, log scale)")
        .y_desc("latency (ms, log scale)")
        .x_labels(12)
        .x_label_formatter(&|&x| rate(x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(error)?;
    let percentile_colors = [BLUE, GREEN, RED, MAGENTA, BLACK];
    for (c, curve) in curves.iter().enumerate() {
        let run_color = Palette99::pick(c).to_rgba();
        let shown: &[usize] = if curves.len() == 1 {
            &[0, 1, 2, 3, 4]
        } else {
            &[0, 2]
        };
        for &p in shown {
            let color = if curves.len() == 1 {
                percentile_colors[p].to_rgba()
            } else {
                run_color
            };
            let series: Vec<(f64, f64)> = curve
                .points
                .iter()
                .filter_map(|point| point.latency_ms.map(|l| (point.offered, l[p])))
                .collect();
            let name = if curves.len() == 1 {
                PERCENTILES[p].to_string()
            } else {
                format!("{} {}", curve_name(curve, c), PERCENTILES[p])
            };
            let width = if p == 2 { 3 } else { 1 };
            chart
                .draw_series(LineSeries::new(
                    series.iter().copied(),
                    color.stroke_width(width),
                ))
                .map_err(error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                });
            chart.draw_series(markers(&series, color)).map_err(error)?;
        }
        if let Some(rate) = curve.sustained.filter(|_| curve.saturated.is_some()) {
            // Its own colour and a dashed legend sample, so that it is never read as "max".
            let color = if curves.len() == 1 {
                SATURATION.to_rgba()
            } else {
                run_color
            };
            chart
                .draw_series(DashedLineSeries::new(
                    [(rate, y_low), (rate, y_high)],
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(error)?
                .label(format!(
                    "{}saturation: kept up with {rate:.0}/s",
                    if curves.len() == 1 {
                        String::new()
                    } else {
                        format!("{} ", curve_name(curve, c))
                    }
                ))
                .legend(move |(x, y)| {
                    // Three dashes, as the marker itself is drawn.
                    let dash = |from: i32| {
                        PathElement::new(vec![(from, 0), (from + 5, 0)], color.stroke_width(2))
                    };
                    EmptyElement::at((x, y)) + dash(0) + dash(8) + dash(16)
                });
        }
    }
    // Upper left, in the headroom above the data.
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(error)?;

    let mut chart = ChartBuilder::on(&lower)
        .caption("Delivered against offered rate", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((x_low..x_high).log_scale(), (d_low..d_high).log_scale())
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("offered rate (messages/s, log scale)")
        .y_desc("delivered (messages/s, log scale)")
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&|&x| rate(x))
        .y_label_formatter(&|&y| rate(y))
        .draw()
        .map_err(error)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(x_low, x_low), (x_high, x_high)],
            6,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(error)?
        .label("delivered = offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    for (c, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(c).to_rgba();
        let series: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|point| (point.offered, point.delivered))
            .collect();
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(error)?
            .label(curve_name(curve, c))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(markers(&series, color)).map_err(error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}

/// The saturation marker's colour on a single run's plot: none of the percentiles' colours.
const SATURATION: RGBColor = RGBColor(255, 140, 0);

/// A dot at each point of a series.
fn markers(
    series: &[(f64, f64)],
    color: RGBAColor,
) -> impl Iterator<Item = Circle<(f64, f64), i32>> + '_ {
    series
        .iter()
        .map(move |&point| Circle::new(point, 3, color.filled()))
}

/// A rate as an axis shows it: `800`, `20k`, `1.5M`.
fn rate(x: f64) -> String {
    let (value, unit) = match x {
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "k"),
        x => (x, ""),
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.trim_end_matches(".0"))
}

/// The legend's name of curve `index`.
fn curve_name(curve: &Curve, index: usize) -> String {
    if curve.label.is_empty() {
        format!("run {}", index + 1)
    } else {
        curve.label.clone()
    }
}
