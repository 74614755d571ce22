//! `--svg FILE`: each group's pool bytes and cumulative writebacks over the
//! run (the foreign share of the writebacks dashed), or under `--pressure`
//! what the controller reclaimed from each, two panels, drawn with plotters
//! into one SVG written atomically.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Report, Sample};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One value per (timeline point, group).
type Series = dyn Fn(&Sample, usize) -> f64;

/// Draws `runs` (one, or two for `--compare`) side by side into `path`.
pub fn write(path: &Path, runs: &[&Report]) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let width = 640 * runs.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 720)).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        let cols = root.split_evenly((1, runs.len()));
        for (area, r) in cols.iter().zip(runs) {
            let (top, bottom) = area.split_vertically(360);
            panel(&top, r, "pool MiB", None, |s, i| {
                s.groups[i].pool_bytes as f64 / 1048576.0
            })?;
            if r.pressure.is_some() {
                // Under the pressure controller: what it took from each.
                panel(&bottom, r, "MiB the controller reclaimed", None, |s, i| {
                    s.groups[i].reclaimed as f64 / 1048576.0
                })?;
            } else {
                // The foreign share of the writebacks, dashed, where there
                // is one.
                let foreign: &Series = &|s, i| s.groups[i].foreign as f64;
                panel(&bottom, r, "pages written back", Some(foreign), |s, i| {
                    s.groups[i].zswpwb as f64
                })?;
            }
        }
        root.present().map_err(draw)?;
    }
    crate::output::write_atomic(path, svg.as_bytes())
}

fn draw<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    r: &Report,
    what: &str,
    dashed: Option<&Series>,
    y: impl Fn(&Sample, usize) -> f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let x_max = r.timeline.last().map_or(1, |s| s.access).max(1) as f64;
    let y_max = r
        .timeline
        .iter()
        .flat_map(|s| (0..r.groups.len()).map(|i| y(s, i)).collect::<Vec<_>>())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} · {}: {what}", r.scenario, r.policy),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("accesses")
        .y_desc(what)
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .y_label_formatter(&|y| {
            if y_max < 20.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(draw)?;
    for (i, g) in r.groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                r.timeline.iter().map(|s| (s.access as f64, y(s, i))),
                color.stroke_width(2),
            ))
            .map_err(draw)?
            .label(g.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        let Some(d) = dashed else { continue };
        if r.timeline.iter().all(|s| d(s, i) == 0.0) {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                r.timeline.iter().map(|s| (s.access as f64, d(s, i))),
                6,
                4,
                color.stroke_width(2),
            ))
            .map_err(draw)?
            .label(format!("{} (foreign)", g.name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 6, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    Ok(())
}
