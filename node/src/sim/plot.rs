//! Line charts for simulation reports, rendered to SVG by plotters (SVG needs no font files, so reports
//! render the same on any machine).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// One named line: (x, y) points in x order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points; non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
    /// An interval drawn as a shaded band around the line: (x, low, high) in x order, e.g. a
    /// confidence interval; empty for none.
    pub band: Vec<(f64, f64, f64)>,
}

/// Axis labels and title of a chart.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// Caption above the plot.
    pub title: &'a str,
    /// X axis description.
    pub x_label: &'a str,
    /// Y axis description.
    pub y_label: &'a str,
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws `series` as lines into an SVG file at `path`. Fails when there is nothing to draw, so a report
/// never contains an empty chart that looks like a result.
pub fn line_chart(path: &Path, chart: Chart<'_>, series: &[Series]) -> Result<()> {
    let band_points = |s: &Series| {
        s.band
            .iter()
            .flat_map(|&(x, low, high)| [(x, low), (x, high)])
            .collect::<Vec<_>>()
    };
    let finite = || {
        series
            .iter()
            .flat_map(move |s| s.points.iter().copied().chain(band_points(s)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = finite().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !x0.is_finite() {
        return Err(anyhow!("chart `{}` has no data points", chart.title));
    }
    if x0 == x1 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y0 == y1 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let margin = (y1 - y0) * 0.05;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - margin)..(y1 + margin))?;
        ctx.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let band: Vec<(f64, f64, f64)> = s
                .band
                .iter()
                .copied()
                .filter(|(x, low, high)| x.is_finite() && low.is_finite() && high.is_finite())
                .collect();
            if !band.is_empty() {
                // The outline runs along the upper bound and back along the lower one.
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|&(x, _, high)| (x, high))
                    .chain(band.iter().rev().map(|&(x, low, _)| (x, low)))
                    .collect();
                ctx.draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.18).filled(),
                )))?;
            }
            let points = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            ctx.draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|err| anyhow!("cannot draw chart {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_series_in_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reward.svg");
        let series = vec![
            Series {
                name: "node-0".into(),
                points: vec![(0.0, 0.1), (1.0, 0.3), (2.0, f64::NAN), (3.0, 0.4)],
                ..Series::default()
            },
            Series {
                name: "node-1".into(),
                points: vec![(0.0, 0.2), (1.0, 0.2)],
                band: vec![(0.0, 0.1, 0.3), (1.0, 0.15, 0.25)],
            },
        ];
        let chart = Chart {
            title: "Reward per round",
            x_label: "round",
            y_label: "mean reward",
        };
        line_chart(&path, chart, &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("node-0") && svg.contains("node-1") && svg.contains("Reward per round")
        );
        assert!(svg.contains("<polygon"), "the band is drawn");
        for color in ["#1F77B4", "#D62728"] {
            assert!(
                svg.to_ascii_uppercase().contains(color),
                "series colour {color} missing"
            );
        }
    }

    #[test]
    fn refuses_to_draw_an_empty_chart() {
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            title: "empty",
            x_label: "x",
            y_label: "y",
        };
        let err = line_chart(&dir.path().join("e.svg"), chart, &[]).unwrap_err();
        assert!(err.to_string().contains("no data"));
    }
}
