//! `compare --plot`: the per-epoch training loss of each policy, as SVG or PNG (plotters, with an
//! embedded DejaVu Sans Mono font so labels render on machines without fonts).

use std::path::Path;

use mixprec::{Error, Result};
use plotters::prelude::*;

use crate::run::Report;

const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSansMono.ttf");
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes the loss curves to `path` (`.svg` or `.png`), through a temporary file renamed into
/// place, so a failed plot never leaves a partial image.
pub fn loss_curves(path: &Path, reports: &[Report], model: &str) -> Result<()> {
    let ext = check_path(path)?;
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    // Hidden and named like a checkpoint's temp file, so `.gitignore`'s `.*.tmp-*` covers it.
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.{ext}", std::process::id()));
    let drawn = match ext {
        "svg" => draw(
            SVGBackend::new(&tmp, (800, 500)).into_drawing_area(),
            reports,
            model,
        ),
        _ => draw(
            BitMapBackend::new(&tmp, (800, 500)).into_drawing_area(),
            reports,
            model,
        ),
    };
    let result = drawn.map_err(|e| plot_error(path, e)).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The extension of `path`, `svg` or `png`, or an error naming `--plot`.
pub fn check_path(path: &Path) -> Result<&str> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext @ ("svg" | "png")) => Ok(ext),
        _ => Err(Error::InvalidArgument {
            what: "--plot",
            found: path.display().to_string(),
            expected: "a file name ending in .svg or .png",
        }),
    }
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    reports: &[Report],
    model: &str,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let epochs = reports
        .iter()
        .map(|r| r.epoch_losses.len())
        .max()
        .unwrap_or(1);
    let losses = reports
        .iter()
        .flat_map(|r| r.epoch_losses.iter().copied())
        .filter(|l| l.is_finite() && *l > 0.0);
    let (lo, hi) = losses.fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let (lo, hi) = if lo < hi {
        (lo * 0.8, hi * 1.2)
    } else {
        (1e-3, 10.0)
    };
    let caption = format!("training loss per epoch: MLP {model}");
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..epochs as f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (log scale)")
        .draw()
        .map_err(err)?;
    for (r, color) in reports.iter().zip(COLORS.iter().cycle()) {
        let points = r
            .epoch_losses
            .iter()
            .enumerate()
            .map(|(i, &l)| ((i + 1) as f64, l));
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(err)?
            .label(format!("{} ({:.1}%)", r.label, 100.0 * r.test_accuracy))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
