//! Turning an upload's files into what the catalog serves: the mesh in the transfer form render
//! hosts load (`.parallax-mesh`), its parts list (`.parallax-parts.json`) and a thumbnail, all
//! written beside the files.
//!
//! `parallax serve` does this in a child process (`parallax convert`, one at a time in each of
//! two lanes — one for conversions a request waits for, one for those that run after their
//! upload returned, so a CAD file's minutes never hold up an STL — under
//! a time limit and a memory limit): importing a few MB of untrusted bytes and drawing them on
//! lavapipe takes a few times the file's size in memory, which a long-running coordinator would
//! otherwise keep (glibc keeps what its threads freed; docs/BENCHMARKS.md, soak), and a crash or
//! a hang of a CAD kernel on a hostile STEP file must not take the coordinator down. Tests'
//! coordinators, which have no `parallax` binary to start, run the same steps on a thread of
//! their own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parallax_core::ModelId;
use parallax_core::fair::FairQueue;
use parallax_host::RenderWorker;
use parallax_render::import::Tessellation;
use parallax_render::samples::SAMPLES;
use parallax_render::{Format, ImportError, ImportedModel, Mesh, import};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{Semaphore, oneshot};

use crate::catalog::files::{THUMBNAIL, write_atomically};
use crate::catalog::parts::{PARTS, parts_file};
use crate::catalog::settings::ConversionSettings;
use crate::config::ConversionArgs;

/// The imported mesh's file name in a model's folder: hidden, so no upload can be called that.
pub const MESH: &str = ".parallax-mesh";
/// The file a converted model's coarse form is kept in ([`parallax_render::lod::preview`]),
/// for models with levels of detail: what a render host shows first.
pub const PREVIEW: &str = ".parallax-preview";

/// The exit code of `parallax convert` when the file is not a model it can read.
const EXIT_INVALID: u8 = 3;

/// What a conversion made of a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    pub triangles: u64,
    /// `STEP`, `glTF`, `GLB`, `STL` or `OBJ`; `None` for a sample.
    pub format: Option<String>,
    /// The GPU adapter the thumbnail was drawn on.
    pub adapter: String,
}

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("{file}: {source}")]
    Invalid { file: String, source: ImportError },
    /// The child's own words about a file it could not read.
    #[error("{0}")]
    InvalidReported(String),
    /// A `ConversionSettings.json` beside the model that cannot be applied.
    #[error("{0}")]
    Settings(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Told how much of a conversion is done, from 0 to 1, as it goes.
pub type Progress = Arc<dyn Fn(f32) + Send + Sync>;

/// The line a conversion child writes on stderr for its progress: `progress 0.42`.
const PROGRESS_LINE: &str = "progress ";

/// How far below the render hosts a conversion runs (`nice`): it takes the cores they leave, as
/// levels of detail are made on all of them.
const CONVERSION_NICENESS: libc::c_int = 10;

/// What to convert: a file in a folder (the files it names lie beside it), or a sample.
#[derive(Debug, Clone)]
pub enum Source {
    File { folder: PathBuf, file: String },
    Sample { folder: PathBuf, id: ModelId },
}

impl Source {
    fn folder(&self) -> &Path {
        match self {
            Source::File { folder, .. } | Source::Sample { folder, .. } => folder,
        }
    }
}

/// Which queue a conversion waits in: each has one child at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane<'a> {
    /// A request is waiting for it: an STL, glTF or OBJ upload, a thumbnail or mesh made again.
    Waited,
    /// It runs after its upload returned (a STEP file), however long it takes: the accounts
    /// whose conversions wait take turns ([`FairTurns`]).
    Background { account: &'a str },
}

/// One turn at a time, handed to the accounts waiting in turn ([`FairQueue`]): an account that
/// queued hours of STEP files holds another's next file up by one conversion, not by all of
/// them.
#[derive(Default)]
pub struct FairTurns {
    state: Mutex<Turns>,
}

#[derive(Default)]
struct Turns {
    /// A turn is taken.
    busy: bool,
    waiting: FairQueue<String, oneshot::Sender<FairTurn>>,
}

/// A turn of [`FairTurns`]: the next waiting account's once dropped.
pub struct FairTurn {
    turns: Option<Arc<FairTurns>>,
}

impl FairTurns {
    /// Waits for `account`'s turn.
    pub async fn turn(self: &Arc<Self>, account: &str) -> FairTurn {
        let waiting = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !state.busy {
                state.busy = true;
                return FairTurn {
                    turns: Some(self.clone()),
                };
            }
            let (handed, waiting) = oneshot::channel();
            state.waiting.push(account.to_string(), handed);
            waiting
        };
        // The sender is dropped only unsent (a turn is never lost: one sent and not received is
        // dropped with the receiver, and passes on).
        waiting.await.unwrap_or(FairTurn { turns: None })
    }

    /// Conversions waiting for their turn.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiting.len()
    }
}

impl Drop for FairTurn {
    fn drop(&mut self) {
        let Some(turns) = self.turns.take() else {
            return;
        };
        let mut state = turns.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut turn = FairTurn {
            turns: Some(turns.clone()),
        };
        while let Some((_, waiter)) = state.waiting.pop() {
            match waiter.send(turn) {
                Ok(()) => return,
                // That waiter gave up: the next one.
                Err(back) => turn = back,
            }
        }
        // Nobody waits: the turn ends here, without passing itself on again.
        turn.turns = None;
        state.busy = false;
    }
}

/// Where conversions run.
#[derive(Clone)]
pub enum Converter {
    /// `EXE convert …` child processes, one at a time in each [`Lane`].
    Child {
        exe: PathBuf,
        /// The turn of [`Lane::Waited`].
        waited: Arc<Semaphore>,
        /// The turns of [`Lane::Background`], account by account.
        background: Arc<FairTurns>,
        /// The adapter the last child drew on, or why it could not open one.
        adapter: Arc<Mutex<Option<Result<String, String>>>>,
        limits: ConversionArgs,
    },
    /// On this process's threads, thumbnails on `renderer`, without limits (tests).
    InProcess(RenderWorker, Tessellation),
}

impl Converter {
    pub fn child(exe: PathBuf, limits: ConversionArgs) -> Self {
        Self::Child {
            exe,
            waited: Arc::new(Semaphore::new(1)),
            background: Arc::default(),
            adapter: Arc::new(Mutex::new(None)),
            limits,
        }
    }

    /// The adapter thumbnails are drawn on, or why there is none; `None` before the first.
    pub fn adapter(&self) -> Option<Result<String, String>> {
        match self {
            Converter::Child { adapter, .. } => {
                adapter.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Converter::InProcess(renderer, _) => renderer.adapter().cloned(),
        }
    }

    /// Writes [`MESH`] and [`PARTS`] (for a file) and [`THUMBNAIL`] into the source's folder,
    /// for a request that waits.
    pub async fn prepare(&self, source: Source) -> Result<Prepared, ConvertError> {
        self.prepare_reporting(source, Lane::Waited, Arc::new(|_| {}))
            .await
    }

    /// [`Converter::prepare`] in `lane`, telling `progress` how far it is.
    pub async fn prepare_reporting(
        &self,
        source: Source,
        lane: Lane<'_>,
        progress: Progress,
    ) -> Result<Prepared, ConvertError> {
        match self {
            Converter::Child {
                exe,
                waited,
                background,
                adapter,
                limits,
            } => {
                // The lane's turn, held while the child runs.
                let (_waited, _background) = match lane {
                    Lane::Waited => {
                        let permit = waited.acquire().await.map_err(|_| {
                            ConvertError::Failed("the coordinator is stopping".into())
                        })?;
                        (Some(permit), None)
                    }
                    Lane::Background { account } => (None, Some(background.turn(account).await)),
                };
                let result = run_child(exe, &source, limits, &progress).await;
                let seen = match &result {
                    Ok(prepared) => Some(Ok(prepared.adapter.clone())),
                    Err(ConvertError::Failed(e)) if e.contains("GPU") => Some(Err(e.clone())),
                    Err(_) => None,
                };
                if let Some(seen) = seen {
                    *adapter.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
                }
                result
            }
            Converter::InProcess(renderer, tessellation) => {
                prepare_on(renderer, source, tessellation, None, progress).await
            }
        }
    }
}

/// Converts `source` in this process, its thumbnail drawn on `renderer`: what a tests'
/// coordinator does itself and what `parallax convert` does in a process of its own. The
/// import runs under `memory_limit` (MiB beyond what the process has), if one is given. Of its
/// progress, the import is the first nine tenths (a STEP file's told as OpenCascade goes), the
/// thumbnail the last.
async fn prepare_on(
    renderer: &RenderWorker,
    source: Source,
    tessellation: &Tessellation,
    memory_limit: Option<u64>,
    progress: Progress,
) -> Result<Prepared, ConvertError> {
    let (folder, id, mesh, format) = match source {
        Source::File { folder, file } => {
            let (imported, transfer) = tokio::task::spawn_blocking({
                let (folder, file, tessellation) = (folder.clone(), file.clone(), *tessellation);
                let progress = progress.clone();
                move || {
                    let _limit = memory_limit.map(MemoryLimit::impose).transpose()?;
                    let mut imported = import_in(&folder, &file, &tessellation, &progress)?;
                    // Levels of detail are made once, here, for every host that draws it.
                    parallax_render::lod::make_levels(&mut imported.mesh);
                    // And how it faces: looking at every edge of a big model takes seconds.
                    imported.mesh.facing = Some(imported.mesh.orientation());
                    let transfer = imported.mesh.to_bytes();
                    let preview =
                        parallax_render::lod::preview(&imported.mesh).map(|mut coarse| {
                            coarse.facing = Some(coarse.orientation());
                            coarse.to_bytes()
                        });
                    let parts = parts_file(&imported.mesh);
                    Ok::<_, ConvertError>((imported, (transfer, preview, parts)))
                }
            })
            .await
            .map_err(|e| ConvertError::Failed(format!("the importer failed: {e}")))??;
            let (transfer, preview, parts) = transfer;
            // The coarse form first: a host that finds the mesh finds it too.
            match preview {
                Some(preview) => write_atomically(&folder.join(PREVIEW), &preview).await?,
                // One from an earlier conversion would not be this mesh's.
                None => match tokio::fs::remove_file(folder.join(PREVIEW)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                },
            }
            write_atomically(&folder.join(MESH), &transfer).await?;
            write_atomically(&folder.join(PARTS), &parts).await?;
            let format = imported.format.as_str().to_string();
            progress(0.9);
            (folder, ModelId::new(file), imported.mesh, Some(format))
        }
        Source::Sample { folder, id } => {
            let mesh = sample_mesh(&id)?;
            (folder, id, mesh, None)
        }
    };
    let triangles = mesh.drawn_triangles();
    let png = renderer
        .thumbnail(id, Arc::new(mesh))
        .await
        .map_err(ConvertError::Failed)?;
    tokio::fs::create_dir_all(&folder).await?;
    write_atomically(&folder.join(THUMBNAIL), &png).await?;
    let adapter = match renderer.adapter() {
        Some(Ok(name)) => name.clone(),
        _ => String::new(),
    };
    Ok(Prepared {
        triangles,
        format,
        adapter,
    })
}

/// How often a conversion's memory is looked at.
const MEMORY_WATCH: Duration = Duration::from_millis(50);

/// Runs `exe convert` on `source` under `limits`: killed when it takes longer than their
/// time, or holds more memory than they allow (resident memory, read every [`MEMORY_WATCH`]:
/// what a container's memory limit counts).
async fn run_child(
    exe: &Path,
    source: &Source,
    limits: &ConversionArgs,
    progress: &Progress,
) -> Result<Prepared, ConvertError> {
    let mut command = tokio::process::Command::new(exe);
    command.arg("convert").arg("--folder").arg(source.folder());
    match source {
        Source::File { file, .. } => command.arg("--file").arg(file),
        Source::Sample { id, .. } => command.arg("--sample").arg(id.as_str()),
    };
    command
        .arg("--convert-memory-limit-mb")
        .arg(limits.memory_limit_mb.to_string())
        .arg("--step-angular-deflection")
        .arg(limits.angular_degrees.to_string());
    if let Some(chordal) = limits.chordal_mm {
        command
            .arg("--step-chordal-deflection")
            .arg(chordal.to_string());
    }
    command
        .env("RUST_LOG", "warn")
        // Its last words are the reason a conversion failed, not a backtrace.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Behind the render hosts on the same machine: a headset's next frame matters more than
    // how soon a conversion ends. Set before it starts, so every thread it makes inherits it
    // (Linux keeps a niceness per thread); failing to is no reason not to convert.
    // SAFETY: between fork and exec only setpriority runs, which is async-signal-safe and
    // touches no memory.
    unsafe {
        command.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, CONVERSION_NICENESS);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| ConvertError::Failed(format!("starting {}: {e}", exe.display())))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_lines(child.stderr.take(), progress.clone());
    let deadline = tokio::time::Instant::now() + limits.time_limit();
    let most = limits.memory_limit_mb.saturating_mul(1024 * 1024);
    let started = std::time::Instant::now();
    // The most it was seen to hold: what an operator sizes the limit by.
    let mut peak = 0;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(MEMORY_WATCH) => {}
        }
        let held = child.id().and_then(resident_bytes);
        peak = peak.max(held.unwrap_or(0));
        let over = if tokio::time::Instant::now() >= deadline {
            format!("took longer than its limit of {} s", limits.time_limit_s)
        } else if held.is_some_and(|held| held > most) {
            format!(
                "needed more than its memory limit of {} MiB",
                limits.memory_limit_mb
            )
        } else {
            continue;
        };
        let _ = child.kill().await;
        return Err(ConvertError::Failed(format!("converting the model {over}")));
    };
    let (seconds, peak_mib) = (started.elapsed().as_secs_f64(), peak / (1024 * 1024));
    tracing::info!(
        "conversion ended ({status}) in {seconds:.1} s, holding at most {peak_mib} MiB (looked \
         at every {} ms)",
        MEMORY_WATCH.as_millis()
    );
    let stdout = stdout.await.unwrap_or_default();
    let stderr = stderr.await.unwrap_or_default();
    let said = last_words(&stderr).to_string();
    // Between two looks at its memory, an allocation can fail on the child's own address-space
    // limit.
    if ran_out_of_memory(&stderr) && status.code() != Some(0) {
        return Err(ConvertError::Failed(format!(
            "converting the model needed more than its memory limit of {} MiB",
            limits.memory_limit_mb
        )));
    }
    match status.code() {
        Some(0) => serde_json::from_slice(&stdout)
            .map_err(|e| ConvertError::Failed(format!("the converter's answer: {e}"))),
        Some(code) if code == i32::from(EXIT_INVALID) => Err(ConvertError::InvalidReported(said)),
        Some(code) => Err(ConvertError::Failed(format!(
            "the converter failed ({code}): {said}"
        ))),
        None => Err(ConvertError::Failed(format!(
            "the converter crashed ({status}): {said}"
        ))),
    }
}

/// Everything `pipe` gives until it closes, read on a task of its own.
fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
        }
        bytes
    })
}

/// What a child says on `pipe` until it closes, read on a task of its own as it comes: its
/// progress lines go to `progress`, the rest is returned.
fn read_lines(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    progress: Progress,
) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut said = String::new();
        let Some(pipe) = pipe else {
            return said;
        };
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match line.strip_prefix(PROGRESS_LINE).map(str::parse::<f32>) {
                Some(Ok(done)) if done.is_finite() => progress(done.clamp(0.0, 1.0)),
                _ => {
                    said.push_str(&line);
                    said.push('\n');
                }
            }
        }
        said
    })
}

/// The resident memory of process `pid` and of the processes it started, in bytes, while it runs.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let own = kilobytes(&status, "VmRSS:")? * 1024;
    // And its children's, whichever of its threads started them (`parallax-step`).
    let children: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .filter_map(resident_bytes)
        .sum();
    Some(own + children)
}

/// The `field` of a `/proc/…/status` text, in kB.
fn kilobytes(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `parallax convert`: converts `source` in this process with a GPU of its own under
/// `limits`' memory limit, prints [`Prepared`] as JSON on stdout, and returns the exit code (a
/// file that is no model: 3).
pub async fn convert_command(source: Source, limits: &ConversionArgs) -> u8 {
    // Ends with the coordinator that started it, which alone watches its time and memory.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        eprintln!("asking to end with the coordinator: {e}");
        return 1;
    }
    // No GPU models kept besides the one drawn: the process draws one and exits.
    let renderer = RenderWorker::start_lazy(0);
    let tessellation = limits.tessellation();
    // A line a percent at most: the coordinator reads them as they come.
    let told = Mutex::new(-1.0f32);
    let progress: Progress = Arc::new(move |done| {
        let mut told = told.lock().unwrap_or_else(|e| e.into_inner());
        if done >= *told + 0.01 {
            *told = done;
            eprintln!("{PROGRESS_LINE}{done:.3}");
        }
    });
    match prepare_on(
        &renderer,
        source,
        &tessellation,
        Some(limits.memory_limit_mb),
        progress,
    )
    .await
    {
        Ok(prepared) => match serde_json::to_string(&prepared) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(
            e @ (ConvertError::Invalid { .. }
            | ConvertError::InvalidReported(_)
            | ConvertError::Settings(_)),
        ) => {
            eprintln!("{e}");
            EXIT_INVALID
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Imports `folder/file`; the files it names are looked up by their last path segment among the
/// files beside it, as uploads store them flat. STEP files go to OpenCascade.
fn import_in(
    folder: &Path,
    file: &str,
    tessellation: &Tessellation,
    progress: &Progress,
) -> Result<ImportedModel, ConvertError> {
    let (settings, _) = ConversionSettings::beside(folder, file).map_err(ConvertError::Settings)?;
    let mut model = import_file_in(folder, file, tessellation, progress)?;
    settings.apply(&mut model.mesh);
    Ok(model)
}

/// [`import_in`] before the `ConversionSettings.json` beside the file are applied.
fn import_file_in(
    folder: &Path,
    file: &str,
    tessellation: &Tessellation,
    progress: &Progress,
) -> Result<ImportedModel, ConvertError> {
    // A STEP file is parallax-step's to read: its format is told by its name and first bytes.
    let mut head = Vec::with_capacity(4);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(folder.join(file))?, 4),
        &mut head,
    )?;
    if Format::detect(file, &head) == Ok(Format::Step) {
        return read_step(folder, file, tessellation, progress);
    }
    let bytes = std::fs::read(folder.join(file))?;
    let invalid = |source| ConvertError::Invalid {
        file: file.to_string(),
        source,
    };
    let mut beside = |uri: &str| {
        let wanted = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
        let plain = !wanted.is_empty() && !wanted.starts_with('.');
        plain
            .then(|| std::fs::read(folder.join(wanted)).ok())
            .flatten()
    };
    import(file, &bytes, &mut beside).map_err(invalid)
}

/// Reads the STEP file `folder/file` in a `parallax-step` child, the one program that loads
/// OpenCascade, telling `progress` as it goes. It inherits this process's memory limit, and the
/// coordinator counts its memory with this process's; it dies with the thread that started it.
fn read_step(
    folder: &Path,
    file: &str,
    tessellation: &Tessellation,
    progress: &Progress,
) -> Result<ImportedModel, ConvertError> {
    use std::io::{BufRead, Read};
    use std::os::unix::process::CommandExt;
    let program = step_program()?;
    // Removed however the reading ends.
    struct Removed(PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let out = Removed(folder.join(STEP_OUT));
    let mut command = std::process::Command::new(&program);
    command
        .arg("--angular-degrees")
        .arg(tessellation.angular_degrees.to_string());
    if let Some(chordal) = tessellation.chordal {
        command.arg("--chordal-mm").arg(chordal.to_string());
    }
    // The upload's name is the uploader's: after `--`, never taken for an option.
    command.arg("--").arg(folder.join(file)).arg(&out.0);
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid and _exit.
    unsafe {
        command.pre_exec(move || {
            // Killed with the thread that started it, and not started at all if that is gone.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ConvertError::Failed(format!("starting {}: {e}", program.display())))?;
    let mut stderr = child.stderr.take();
    let said = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let mut summary = String::new();
    if let Some(stdout) = child.stdout.take() {
        // Until it closes its output, whatever bytes it writes.
        for line in std::io::BufReader::new(stdout)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let line = String::from_utf8_lossy(&line).into_owned();
            match line.strip_prefix(PROGRESS_LINE).map(str::parse::<f32>) {
                Some(Ok(done)) => progress(0.85 * done),
                _ => summary = line,
            }
        }
    }
    let status = child.wait()?;
    let stderr = said.join().unwrap_or_default();
    let said = last_words(&stderr);
    let read = match status.code() {
        Some(0) => std::fs::read(&out.0),
        Some(code) if code == i32::from(EXIT_INVALID) => {
            return Err(ConvertError::InvalidReported(format!("{file}: {said}")));
        }
        _ if ran_out_of_memory(&stderr) => {
            return Err(ConvertError::Failed(
                "reading the STEP file ran out of memory".into(),
            ));
        }
        // Killed by a signal (a crash): said as the conversion child's own crash is.
        None => {
            return Err(ConvertError::Failed(format!(
                "reading {file}: OpenCascade crashed ({status}): {said}"
            )));
        }
        Some(code) => {
            return Err(ConvertError::Failed(format!(
                "reading {file}: OpenCascade failed ({code}): {said}"
            )));
        }
    };
    let mesh = Mesh::from_bytes(&read?)
        .map_err(|e| ConvertError::Failed(format!("parallax-step's mesh: {e}")))?;
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    tracing::info!(
        file,
        unit = summary["unit"].as_str(),
        chordal_mm = summary["chordalMm"].as_f64(),
        triangles = mesh.triangles(),
        "read a STEP file"
    );
    Ok(ImportedModel {
        format: Format::Step,
        degenerate: summary["degenerate"].as_u64().unwrap_or(0),
        skipped_primitives: 0,
        mesh,
    })
}

/// The last line a child process wrote that says something: why it failed.
fn last_words(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no reason given")
        .trim()
}

/// Whether a child process said an allocation failed: Rust's allocator and OpenCascade's say
/// so in their own words.
fn ran_out_of_memory(stderr: &str) -> bool {
    stderr.contains("memory allocation of") || stderr.contains("ran out of memory")
}

/// Where `parallax-step` writes the mesh, in the upload's folder, until it is read.
const STEP_OUT: &str = ".parallax-step-out";

/// The `parallax-step` program: `PARALLAX_STEP` if set, else beside this program (or, for a
/// test binary in Cargo's `target/*/deps`, one folder up, where Cargo puts programs).
fn step_program() -> Result<PathBuf, ConvertError> {
    if let Some(program) = std::env::var_os("PARALLAX_STEP") {
        return Ok(PathBuf::from(program));
    }
    let exe = std::env::current_exe()?;
    let folder = exe.parent().unwrap_or(Path::new("."));
    let cargo_deps = folder.file_name().is_some_and(|name| name == "deps");
    [Some(folder), folder.parent().filter(|_| cargo_deps)]
        .into_iter()
        .flatten()
        .map(|dir| dir.join("parallax-step"))
        .find(|program| program.is_file())
        .ok_or_else(|| {
            ConvertError::Failed(format!(
                "parallax-step, which reads STEP files, is not beside {} (build it with \
                 `cargo build -p parallax-step`, or set PARALLAX_STEP)",
                exe.display()
            ))
        })
}

/// The process's address-space limit while it imports: `limit_mb` MiB beyond what it maps now
/// (its threads' stacks and allocator arenas are counted in, and are no import's doing). The
/// parent kills a conversion whose resident memory passes the limit; this is the backstop for
/// an import that allocates faster than the parent looks, at twice the limit. (Any lower, and
/// allocations fail inside OpenCascade, which carries on and crawls rather than stopping.) The
/// previous limit comes back when this is dropped, before the thumbnail's GPU driver maps its
/// own memory.
struct MemoryLimit {
    before: (nix::sys::resource::rlim_t, nix::sys::resource::rlim_t),
}

impl MemoryLimit {
    fn impose(limit_mb: u64) -> Result<Self, ConvertError> {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let status = std::fs::read_to_string("/proc/self/status")?;
        let in_use_kb = kilobytes(&status, "VmSize:")
            .ok_or_else(|| ConvertError::Failed("reading this process's size".into()))?;
        let before = getrlimit(Resource::RLIMIT_AS)
            .map_err(|e| ConvertError::Failed(format!("reading the memory limit: {e}")))?;
        let wanted = (in_use_kb * 1024).saturating_add(limit_mb.saturating_mul(2 * 1024 * 1024));
        setrlimit(Resource::RLIMIT_AS, wanted.min(before.1), before.1)
            .map_err(|e| ConvertError::Failed(format!("setting the memory limit: {e}")))?;
        Ok(Self { before })
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        let (soft, hard) = self.before;
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, soft, hard);
    }
}

fn sample_mesh(id: &ModelId) -> Result<Mesh, ConvertError> {
    SAMPLES
        .iter()
        .find(|s| s.id == id.as_str())
        .map(|s| (s.build)())
        .ok_or_else(|| ConvertError::Failed(format!("there is no sample `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `turns` has `n` conversions waiting.
    async fn until_waiting(turns: &FairTurns, n: usize) {
        while turns.waiting() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn accounts_take_turns_in_the_background_lane() {
        let turns = Arc::new(FairTurns::default());
        let served = Arc::new(Mutex::new(Vec::new()));
        let running = turns.turn("busy").await;
        let mut tasks = Vec::new();
        for (n, account) in ["busy", "busy", "busy", "quiet"].into_iter().enumerate() {
            let (mine, served) = (turns.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = mine.turn(account).await;
                served.lock().unwrap().push(account);
            }));
            until_waiting(&turns, n + 1).await;
        }
        // One that gives up while it waits loses its place, not the others' turns.
        let impatient = tokio::spawn({
            let turns = turns.clone();
            async move { turns.turn("impatient").await }
        });
        until_waiting(&turns, 5).await;
        impatient.abort();
        assert!(impatient.await.is_err_and(|e| e.is_cancelled()));
        drop(running);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*served.lock().unwrap(), ["busy", "quiet", "busy", "busy"]);
        // Every turn came back: the next one is taken at once.
        let _again = tokio::time::timeout(Duration::from_secs(5), turns.turn("quiet"))
            .await
            .expect("the lane is free");
    }
}
