//! `parallax render MODEL --output IMAGE`: import, frame, render once, write, exit.

use std::time::Instant;

use anyhow::Context;
use glam::{Mat4, Vec3};
use parallax_render::{Renderer, View, encode_jpeg, encode_png, import_file};

use crate::config::{RenderArgs, ViewSide};

/// Renders `args.model` into `args.output`; blocking (call it off the async runtime).
pub fn render_file(args: &RenderArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // Opening the GPU and reading the file take about as long as each other: do both at once.
    let device = std::thread::spawn(Renderer::new);
    let model =
        import_file(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let imported = started.elapsed();
    let mut renderer = device
        .join()
        .map_err(|_| anyhow::anyhow!("the GPU thread panicked"))?
        .context("opening the GPU")?;
    let device_ready = started.elapsed();
    let gpu = renderer.upload(&model.mesh)?;
    let direction = match args.view {
        ViewSide::Iso => Vec3::new(1.0, 0.8, 1.3),
        ViewSide::Front => Vec3::Z,
        ViewSide::Top => Vec3::Y,
    };
    let (width, height) = args.size;
    let view = View::framing_from(&gpu.bounds, direction, width, height);
    let image = renderer.render(&gpu, Mat4::IDENTITY, &view)?;
    let rendered = started.elapsed();
    let extension = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match extension.as_deref() {
        Some("png") => encode_png(&image)?,
        Some("jpg" | "jpeg") => encode_jpeg(&image, 90)?,
        _ => anyhow::bail!("the output must end in .png, .jpg or .jpeg"),
    };
    std::fs::write(&args.output, bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    tracing::info!(
        triangles = model.triangles(),
        degenerate_dropped = model.degenerate,
        import_ms = imported.as_secs_f64() * 1e3,
        device_ready_ms = device_ready.as_secs_f64() * 1e3,
        rendered_ms = rendered.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        adapter = %renderer.adapter().name,
        "rendered {} ({}) to {}",
        args.model.display(),
        model.format.as_str(),
        args.output.display()
    );
    Ok(())
}
