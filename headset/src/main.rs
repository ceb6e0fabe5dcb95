//! `parallax-headset`: a headset on the command line.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use parallax_headset::{Event, Headset};

#[derive(Debug, Parser)]
#[command(
    name = "parallax-headset",
    version,
    about = "A Parallax headset on the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join as one headset: print what the space shows, optionally save the frames.
    Join {
        /// The coordinator, e.g. http://127.0.0.1:3000.
        #[arg(long, env = "PARALLAX_SERVER", default_value = "http://127.0.0.1:3000")]
        server: String,
        /// Name this headset reports.
        #[arg(long, default_value = "parallax-headset")]
        device: String,
        /// Write each received frame here as `frame-<n>.jpg`.
        #[arg(long)]
        frames: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Join {
            server,
            device,
            frames,
        } => join(&server, &device, frames).await,
    }
}

async fn join(server: &str, device: &str, frames: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(dir) = &frames {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut headset = Headset::connect(server, device).await?;
    println!("joined {server} (conversation {})", headset.conversation());
    let started = Instant::now();
    loop {
        let event = tokio::select! {
            event = headset.next_event() => event?,
            _ = tokio::signal::ctrl_c() => {
                let close = headset.bye().await?;
                println!("left: {}", close.reason);
                return Ok(());
            }
        };
        match event {
            Event::Selection { change, model } => match model {
                Some(model) => println!(
                    "change {}: showing {} ({} triangles)",
                    change.0, model.name, model.triangles
                ),
                None => println!("change {}: nothing selected yet", change.0),
            },
            Event::Frame { header, jpeg } => {
                println!(
                    "frame {} (change {}): {} KiB at {:.1} s",
                    header.frame,
                    header.change.0,
                    jpeg.len() / 1024,
                    started.elapsed().as_secs_f64()
                );
                if let Some(dir) = &frames {
                    let path = dir.join(format!("frame-{}.jpg", header.frame));
                    std::fs::write(&path, &jpeg)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Event::Error { code, message } => eprintln!("server error {code}: {message}"),
        }
    }
}
