//! `throughput-vs-batch.svg`: throughput, and CPU time per descriptor, against
//! descriptors per message.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::case::SWEEP;
use crate::BoxError;

/// One line of a panel: its name and (batch size, value) points.
pub type Series = (String, Vec<(usize, f64)>);

/// A palette that stays distinguishable for colour-blind readers; the raw
/// loops are drawn in black and grey.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 60, 20),
];

/// Draws two panels side by side: throughput (million descriptors per second)
/// and CPU microseconds per descriptor, both processes together. Values come
/// in descriptors per second and nanoseconds.
pub fn draw(path: &Path, throughput: &[Series], cpu: &[Series]) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (1400, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let top = highest(throughput, 1e-6).max(0.1);
    panel(
        &left,
        "Throughput by descriptors per message",
        "million descriptors per second (higher is better)",
        throughput,
        1e-6,
        SeriesLabelPosition::UpperLeft,
        0f64..top * 1.08,
    )?;
    // CPU time falls by an order of magnitude from 1 to 253 per message: a
    // logarithmic axis keeps the differences between series readable.
    let top = highest(cpu, 1e-3).max(0.1);
    let bottom = lowest(cpu, 1e-3).clamp(0.01, top);
    panel(
        &right,
        "CPU time per descriptor, sender + receiver",
        "microseconds per descriptor, log scale (lower is better)",
        cpu,
        1e-3,
        SeriesLabelPosition::UpperRight,
        (bottom * 0.8..top * 1.25).log_scale(),
    )?;
    root.present()?;
    Ok(())
}

fn highest(series: &[Series], scale: f64) -> f64 {
    series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, v)| *v * scale))
        .fold(0.0, f64::max)
}

fn lowest(series: &[Series], scale: f64) -> f64 {
    series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, v)| *v * scale))
        .fold(f64::INFINITY, f64::min)
}

#[allow(clippy::too_many_arguments)]
fn panel<Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    y_desc: &str,
    series: &[Series],
    scale: f64,
    legend: SeriesLabelPosition,
    y: Y,
) -> Result<(), BoxError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (1f64..256f64)
                .log_scale()
                .with_key_points(SWEEP.iter().map(|&b| b as f64).collect()),
            y,
        )?;
    chart
        .configure_mesh()
        .x_desc("descriptors per message (max_fds_per_message), log scale")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{}", x.round()))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let mut next = COLOURS.iter().cycle();
    for (name, points) in series {
        let style = if name.starts_with("raw loop, plain") {
            BLACK.stroke_width(3)
        } else if name.starts_with("raw loop") {
            RGBColor(150, 150, 150).stroke_width(3)
        } else {
            next.next().copied().unwrap_or(BLACK).stroke_width(2)
        };
        let line: Vec<(f64, f64)> = points.iter().map(|&(b, v)| (b as f64, v * scale)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), style))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, style.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
