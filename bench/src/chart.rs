//! bench/chart.svg: for each charted workload of the main table, every
//! column's speed relative to procpool (procpool = 1; higher is faster; the
//! floor is the lowest of the three), on a log scale.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{self, Run, COLUMNS};

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
];

pub fn draw(run: &Run, path: &Path) -> Result<(), String> {
    draw_inner(run, path).map_err(|e| e.to_string())
}

fn draw_inner(run: &Run, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<_> = report::rows(run)
        .into_iter()
        .filter(|r| r.chart_label.is_some())
        .collect();
    // Relative speed of system s = 1 / procpool's advantage over it.
    let bars: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|r| {
            (0..COLUMNS.len())
                .map(|s| {
                    if s == 0 {
                        r.values[0].map(|_| 1.0)
                    } else {
                        r.advantage(s).map(|a| 1.0 / a)
                    }
                })
                .collect()
        })
        .collect();
    let all = bars.iter().flatten().flatten().copied();
    let (lo, hi) = all.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo / 2.0, hi * 2.0);

    let root = SVGBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Speed relative to procpool (procpool = 1, higher is faster, log scale)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rows.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc("× procpool's speed")
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;

    let width = 0.8 / COLUMNS.len() as f64;
    for (s, name) in COLUMNS.iter().enumerate() {
        let color = COLORS[s];
        let rects = bars.iter().enumerate().filter_map(|(i, b)| {
            let v = b[s]?;
            let x0 = i as f64 + 0.1 + s as f64 * width;
            Some(Rectangle::new(
                [(x0, lo), (x0 + width * 0.9, v)],
                color.filled(),
            ))
        });
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (rows.len() as f64, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        root.draw_text(row.chart_label.as_deref().unwrap_or(""), &style, (x, y + 8))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{key, Figures};
    use crate::plan::Plan;
    use crate::systems::System;

    #[test]
    fn draws_the_main_rows() {
        let plan = Plan::smoke();
        let mut figures: [Result<Figures, String>; 6] = std::array::from_fn(|_| Ok(Figures::new()));
        for (s, v) in [
            (System::Procpool, 2.0),
            (System::Pipe, 1.0),
            (System::Python, 60.0),
        ] {
            if let Ok(f) = &mut figures[s.index()] {
                f.insert(key::startup(plan.processes), v);
                f.insert(key::ASYNC_TPS, 1e6 / v);
            }
        }
        figures[System::Procspawn.index()] = Err("not run".into());
        let run = Run {
            plan,
            fd_limit: 1024,
            figures,
            distributed: None,
        };
        let path =
            std::env::temp_dir().join(format!("procpool-bench-chart-{}.svg", std::process::id()));
        draw(&run, &path).expect("chart drawn");
        let svg = std::fs::read_to_string(&path).expect("chart written");
        std::fs::remove_file(&path).ok();
        assert!(svg.contains("startup") && svg.contains("lowest floor"));
    }
}
