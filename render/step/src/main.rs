//! `parallax-step FILE OUT [--chordal-mm MM] [--angular-degrees DEG]`: reads a STEP file with
//! OpenCascade and writes the mesh to OUT in Parallax's transfer form. The one program that loads
//! OpenCascade: `parallax convert` runs it for STEP uploads, so `parallax`, its render hosts and
//! `parallax render` start without the CAD kernel's 27 libraries.
//!
//! While it reads, it prints `progress 0.420` lines on stdout (the share of OpenCascade's work
//! done), and when done a last line of JSON: `{"unit","chordalMm","triangles","degenerate"}`. A
//! file that is not a STEP model it can read exits 3, anything else that fails 1, the reason on
//! stderr either way. It ends when the process that started it does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use parallax_step::Tessellation;

/// What a file that is no STEP model exits with (as `parallax convert` does).
const EXIT_INVALID: u8 = 3;

#[derive(Parser)]
#[command(
    version,
    about = "Reads a STEP file into Parallax's mesh transfer form"
)]
struct Args {
    /// The STEP file.
    file: PathBuf,
    /// Where the mesh goes.
    out: PathBuf,
    /// The largest distance between a triangle and its surface, in millimetres (default: a
    /// thousandth of the model's largest side).
    #[arg(long)]
    chordal_mm: Option<f64>,
    /// The largest angle between neighbouring triangles along a curve, in degrees.
    #[arg(long, default_value_t = Tessellation::default().angular_degrees)]
    angular_degrees: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Ends with its parent, which alone watches its time and memory.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        eprintln!("asking to end with the parent: {e}");
        return ExitCode::FAILURE;
    }
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("reading {}: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let tessellation = Tessellation {
        chordal: args.chordal_mm,
        angular_degrees: args.angular_degrees,
    };
    // A line a percent at most: the parent reads them as they come.
    let mut told = -1.0;
    let mut progress = |done: f64| {
        if done >= told + 0.01 {
            told = done;
            println!("progress {done:.3}");
        }
    };
    let step = match parallax_step::read_reporting(&bytes, &tessellation, &mut progress) {
        Ok(step) => step,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Err(e) = std::fs::write(&args.out, step.model.mesh.to_bytes()) {
        eprintln!("writing {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let summary = serde_json::json!({
        "unit": step.unit,
        "chordalMm": step.chordal,
        "triangles": step.model.mesh.triangles(),
        "degenerate": step.model.degenerate,
    });
    println!("{summary}");
    ExitCode::SUCCESS
}
