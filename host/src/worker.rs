//! The render thread: owns the wgpu device and turns "model X from this pose" into JPEG frames
//! (and catalog thumbnails into PNG). GPU readback blocks, so it never runs on the async runtime.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use glam::Mat4;
use lru::LruCache;
use parallax_core::ModelId;
use parallax_core::review::Review;
use parallax_core::yuv::I420;
use parallax_render::{
    Eye, GpuModel, Look, Mesh, RenderError, Renderer, RgbaImage, View, encode_jpeg, encode_png,
    with_coverage,
};
use tokio::sync::{mpsc, oneshot};

const JPEG_QUALITY: u8 = 80;
/// Size of catalog thumbnails (4:3, like the tablet's cards).
pub const THUMBNAIL_WIDTH: u32 = 480;
pub const THUMBNAIL_HEIGHT: u32 = 360;

/// What a job wants back.
#[derive(Debug, Clone)]
enum Output {
    /// A catalog thumbnail: PNG at the thumbnail size.
    Thumbnail,
    /// A device's frame.
    Pose {
        frame: Frame,
        /// The pixels as they are (for a video encoder), not a JPEG.
        raw: bool,
    },
}

/// What a device's frame shows: one or two eyes side by side, each `size`, the model placed by
/// `transform` and looking as the design `review` says.
#[derive(Debug, Clone)]
pub struct Frame {
    pub eyes: Vec<Eye>,
    pub size: (u32, u32),
    pub transform: Mat4,
    pub review: Arc<Review>,
    /// For a see-through display: the model on a transparent background, its coverage below
    /// ([`parallax_render::with_coverage`]).
    pub coverage: bool,
}

struct Job {
    /// The model to draw; `None` is the empty scene.
    model: Option<(ModelId, Arc<Mesh>)>,
    output: Output,
    reply: oneshot::Sender<Result<Rendered, String>>,
}

/// What the render thread hands back.
enum Rendered {
    /// A JPEG or PNG file.
    Encoded(Vec<u8>),
    /// Pixels for a video encoder.
    Raw(RawFrame),
}

/// A frame for a video encoder: I420 where the device converts it cheaper than the CPU (a
/// real GPU), else RGBA, converted on the connection's encoder thread beside the next render.
pub enum RawFrame {
    Rgba(RgbaImage),
    I420(I420),
}

/// A handle to the render thread; cheap to clone. When the last handle goes, the thread is
/// stopped and joined.
#[derive(Clone)]
pub struct RenderWorker {
    thread: Arc<Thread>,
    /// The adapter the thread renders on, or why it could not open one; unset until it tried.
    adapter: Arc<OnceLock<Result<String, String>>>,
}

/// Owns the render thread. Dropping it closes the job queue and waits for the thread to drop its
/// GPU device: a Vulkan device still alive while the process exits can crash the driver
/// (lavapipe segfaults in its exit handlers), so no device may outlive its owner.
struct Thread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Thread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(handle) = self.handle.take() {
            // The thread only finishes the job in hand; a panic there was already reported.
            let _ = handle.join();
        }
    }
}

/// Opens the device and records which adapter it is (or why there is none).
fn open(adapter: &OnceLock<Result<String, String>>) -> Result<Renderer, RenderError> {
    let renderer = Renderer::new();
    let outcome = match &renderer {
        Ok(r) => Ok(format!("{} ({:?})", r.adapter().name, r.adapter().backend)),
        Err(e) => Err(e.to_string()),
    };
    match &outcome {
        Ok(name) => tracing::info!(adapter = %name, "renderer ready"),
        Err(e) => tracing::error!("renderer unavailable, frames will fail: {e}"),
    }
    let _ = adapter.set(outcome);
    renderer
}

impl RenderWorker {
    /// Starts the render thread and waits until its device is open (or failed to open): for a
    /// render host, whose device is its reason to exist.
    pub async fn start(gpu_cache_bytes: u64) -> Self {
        let (worker, opened) = Self::spawn(true, gpu_cache_bytes);
        let _ = opened.await;
        if worker.adapter.get().is_none() {
            let _ = worker
                .adapter
                .set(Err("the render thread stopped during start-up".into()));
        }
        worker
    }

    /// Starts the render thread; the device opens with the first job (the coordinator's
    /// thumbnails), so a coordinator that never renders never loads a GPU driver (lavapipe's
    /// LLVM alone is 45 MiB resident).
    pub fn start_lazy(gpu_cache_bytes: u64) -> Self {
        Self::spawn(false, gpu_cache_bytes).0
    }

    fn spawn(open_now: bool, gpu_cache_bytes: u64) -> (Self, oneshot::Receiver<()>) {
        let (jobs, mut queue) = mpsc::channel::<Job>(64);
        let (opened, on_open) = oneshot::channel();
        let adapter = Arc::new(OnceLock::new());
        let cell = adapter.clone();
        let spawned = std::thread::Builder::new()
            .name("render".into())
            .spawn(move || {
                let mut renderer = open_now.then(|| open(&cell));
                let _ = opened.send(());
                let mut uploaded = GpuCache::new(gpu_cache_bytes);
                while let Some(job) = queue.blocking_recv() {
                    let result = match renderer.get_or_insert_with(|| open(&cell)) {
                        Ok(renderer) => render_job(renderer, &mut uploaded, &job),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = job.reply.send(result);
                }
            });
        // Without a thread there is no renderer: say so instead of panicking, so a host that
        // cannot start is reported lost and the pool can try again.
        let handle = match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                let _ = adapter.set(Err(format!("could not start a render thread: {e}")));
                None
            }
        };
        let worker = Self {
            thread: Arc::new(Thread {
                jobs: Some(jobs),
                handle,
            }),
            adapter,
        };
        (worker, on_open)
    }

    /// The adapter frames are rendered on, or why there is none; `None` until the device has
    /// been opened (a lazy worker before its first job).
    pub fn adapter(&self) -> Option<&Result<String, String>> {
        self.adapter.get()
    }

    /// Renders the catalog thumbnail of `mesh` as PNG.
    pub async fn thumbnail(&self, model: ModelId, mesh: Arc<Mesh>) -> Result<Vec<u8>, String> {
        self.encoded(Some((model, mesh)), Output::Thumbnail).await
    }

    /// Renders `frame` of `model` as one JPEG: a device's frame, a headset's both eyes.
    pub async fn render_jpeg(
        &self,
        model: Option<(ModelId, Arc<Mesh>)>,
        frame: Frame,
    ) -> Result<Vec<u8>, String> {
        let output = Output::Pose { frame, raw: false };
        self.encoded(model, output).await
    }

    /// [`Self::render_jpeg`], the pixels unencoded for a connection's video encoder.
    pub async fn render_raw(
        &self,
        model: Option<(ModelId, Arc<Mesh>)>,
        frame: Frame,
    ) -> Result<RawFrame, String> {
        let output = Output::Pose { frame, raw: true };
        match self.submit(model, output).await? {
            Rendered::Raw(frame) => Ok(frame),
            Rendered::Encoded(_) => Err("the render thread encoded a raw frame".into()),
        }
    }

    async fn encoded(
        &self,
        model: Option<(ModelId, Arc<Mesh>)>,
        output: Output,
    ) -> Result<Vec<u8>, String> {
        match self.submit(model, output).await? {
            Rendered::Encoded(bytes) => Ok(bytes),
            Rendered::Raw(_) => Err("the render thread sent pixels for a file".into()),
        }
    }

    async fn submit(
        &self,
        model: Option<(ModelId, Arc<Mesh>)>,
        output: Output,
    ) -> Result<Rendered, String> {
        let (reply, answer) = oneshot::channel();
        let jobs = self
            .thread
            .jobs
            .as_ref()
            .ok_or("the render thread has stopped")?;
        let job = Job {
            model,
            output,
            reply,
        };
        jobs.send(job)
            .await
            .map_err(|_| "the render thread has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the render thread dropped the job".to_string())?
    }
}

/// Models uploaded to the GPU, least recently drawn first out once their buffers pass a budget
/// in bytes. The model being drawn always stays, even alone over the budget. Each is kept with
/// the mesh it was uploaded from: a model shown coarse first and then in full is the same id
/// with another mesh, which replaces the coarse one.
struct GpuCache {
    models: LruCache<ModelId, (Weak<Mesh>, GpuModel)>,
    bytes: u64,
    budget: u64,
}

impl GpuCache {
    fn new(budget: u64) -> Self {
        Self {
            models: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// Model `id` as `mesh` on the GPU, uploading it if it is not there yet.
    fn get_or_upload(
        &mut self,
        renderer: &mut Renderer,
        id: &ModelId,
        mesh: &Arc<Mesh>,
    ) -> Result<&GpuModel, String> {
        // The weak reference keeps the mesh's allocation, so no other mesh can have its address.
        let current = self
            .models
            .peek(id)
            .is_some_and(|(uploaded, _)| std::ptr::eq(uploaded.as_ptr(), Arc::as_ptr(mesh)));
        if !current {
            let mut freed = false;
            if let Some((_, (_, stale))) = self.models.pop_entry(id) {
                self.bytes -= stale.gpu_bytes();
                drop(stale);
                freed = true;
            }
            let started = Instant::now();
            let gpu = renderer.upload(mesh).map_err(|e| e.to_string())?;
            tracing::info!(
                model = %id,
                triangles = mesh.triangles(),
                ms = started.elapsed().as_millis(),
                "uploaded a model"
            );
            self.bytes += gpu.gpu_bytes();
            while self.bytes > self.budget
                && let Some((_, (_, evicted))) = self.models.pop_lru()
            {
                self.bytes -= evicted.gpu_bytes();
                freed = true;
            }
            self.models.put(id.clone(), (Arc::downgrade(mesh), gpu));
            if freed {
                release_freed_memory();
            }
        }
        self.models
            .get(id)
            .map(|(_, gpu)| gpu)
            .ok_or_else(|| "the model left the GPU cache".to_string())
    }
}

/// Gives freed memory back to the system: glibc keeps what each thread freed in that thread's
/// arena. On lavapipe a model's GPU buffers are the process's own heap, allocated on the render
/// thread while the mesh was fetched and decoded on others; a coordinator reads uploads on
/// whichever runtime threads handle them.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it is thread-safe and touches
    // no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How `model` looks in `frame`: under its review (as modelled without a model or a review),
/// on a transparent background for a see-through display.
fn look_of(model: Option<&GpuModel>, frame: &Frame) -> Look {
    let look = match model {
        Some(model) if *frame.review != Review::default() => Look::of_review(&frame.review, model),
        _ => Look::default(),
    };
    Look {
        transparent: frame.coverage,
        ..look
    }
}

fn render_job(
    renderer: &mut Renderer,
    uploaded: &mut GpuCache,
    job: &Job,
) -> Result<Rendered, String> {
    let started = Instant::now();
    let model = match &job.model {
        Some((id, mesh)) => Some(uploaded.get_or_upload(renderer, id, mesh)?),
        None => None,
    };
    if let Output::Pose { frame, raw: true } = &job.output {
        let look = look_of(model, frame);
        let ((width, height), scene) = (frame.size, (model, &look));
        let rendered = if frame.coverage {
            renderer
                .render_look(scene, frame.transform, &frame.eyes, width, height)
                .map(|image| RawFrame::Rgba(with_coverage(&image)))
        } else if renderer.converts_to_i420_cheaper() {
            renderer
                .render_eyes_i420(scene, frame.transform, &frame.eyes, width, height)
                .map(RawFrame::I420)
        } else {
            renderer
                .render_look(scene, frame.transform, &frame.eyes, width, height)
                .map(RawFrame::Rgba)
        };
        return rendered.map(Rendered::Raw).map_err(|e| e.to_string());
    }
    let image = match &job.output {
        Output::Thumbnail => match model {
            Some(model) => {
                let view = View::framing(&model.bounds, THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT);
                renderer.render_scene(Some(model), Mat4::IDENTITY, &view)
            }
            None => return Err("nothing to frame: no model".to_string()),
        },
        Output::Pose { frame, .. } => {
            let look = look_of(model, frame);
            let (width, height) = frame.size;
            renderer
                .render_look((model, &look), frame.transform, &frame.eyes, width, height)
                .map(|image| match frame.coverage {
                    true => with_coverage(&image),
                    false => image,
                })
        }
    }
    .map_err(|e: RenderError| e.to_string())?;
    let encoded = match job.output {
        Output::Pose { .. } => encode_jpeg(&image, JPEG_QUALITY),
        Output::Thumbnail => encode_png(&image),
    }
    .map_err(|e| e.to_string())?;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes = encoded.len(),
        "frame rendered"
    );
    Ok(Rendered::Encoded(encoded))
}

#[cfg(test)]
mod tests {
    use parallax_render::samples;

    use super::*;

    #[test]
    fn the_gpu_cache_keeps_to_its_budget_least_recently_drawn_out_first() {
        let Ok(mut renderer) = Renderer::new() else {
            panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
        };
        let (gear, shaft, bracket) = (samples::gear(), samples::shaft(), samples::bracket());
        let (gear, shaft, bracket) = (Arc::new(gear), Arc::new(shaft), Arc::new(bracket));
        let size = |mesh: &Mesh| renderer.upload(mesh).unwrap().gpu_bytes();
        let (gear_bytes, shaft_bytes) = (size(&gear), size(&shaft));
        // Room for the gear and the shaft, not for a third.
        let mut cache = GpuCache::new(gear_bytes + shaft_bytes);
        let (g, s, b) = (ModelId::new("g"), ModelId::new("s"), ModelId::new("b"));
        cache.get_or_upload(&mut renderer, &g, &gear).unwrap();
        cache.get_or_upload(&mut renderer, &s, &shaft).unwrap();
        cache.get_or_upload(&mut renderer, &g, &gear).unwrap();
        assert_eq!(cache.models.len(), 2);
        cache.get_or_upload(&mut renderer, &b, &bracket).unwrap();
        assert!(
            cache.bytes <= cache.budget,
            "{} > {}",
            cache.bytes,
            cache.budget
        );
        assert!(cache.models.contains(&b), "the model being drawn stays");
        assert!(
            !cache.models.contains(&s),
            "the least recently drawn went first"
        );
        // One model over the whole budget is still drawn, alone.
        let mut tiny = GpuCache::new(1);
        tiny.get_or_upload(&mut renderer, &g, &gear).unwrap();
        tiny.get_or_upload(&mut renderer, &s, &shaft).unwrap();
        assert_eq!(tiny.models.len(), 1);
        assert!(tiny.models.contains(&s));
    }

    #[test]
    fn a_model_drawn_from_another_mesh_is_uploaded_again_in_place_of_the_first() {
        let Ok(mut renderer) = Renderer::new() else {
            panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
        };
        let mut big = samples::assembly(30_000);
        parallax_render::lod::make_levels(&mut big);
        let coarse = Arc::new(parallax_render::lod::preview(&big).unwrap());
        let (big, id) = (Arc::new(big), ModelId::new("assembly"));
        let mut cache = GpuCache::new(u64::MAX);
        let first = cache.get_or_upload(&mut renderer, &id, &coarse).unwrap();
        let coarse_bytes = first.gpu_bytes();
        let full_bytes = cache
            .get_or_upload(&mut renderer, &id, &big)
            .unwrap()
            .gpu_bytes();
        assert!(full_bytes > coarse_bytes * 4);
        assert_eq!((cache.models.len(), cache.bytes), (1, full_bytes));
        // The same mesh again is the copy there already.
        let again = cache.get_or_upload(&mut renderer, &id, &big).unwrap();
        assert_eq!(again.gpu_bytes(), cache.bytes);
    }
}
