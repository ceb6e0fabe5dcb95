//! H.264 frames in the browser: WebCodecs' `VideoDecoder` (low-latency mode), each decoded
//! `VideoFrame` drawn on the page's canvas — which the WebXR layer draws from — and closed at
//! once. After a decoder error the decoder is made anew and a key frame asked for; frames until it
//! comes are passed over. Browser only.
//!
//! WebCodecs through web-sys' typed bindings (unstable in web-sys: the wasm build sets
//! `web_sys_unstable_apis`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use leptos::prelude::*;
use parallax_core::FrameHeader;
use parallax_core::device::Codec;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    CanvasRenderingContext2d, EncodedVideoChunk, EncodedVideoChunkInit, EncodedVideoChunkType,
    VideoDecoder, VideoDecoderConfig, VideoDecoderInit, VideoFrame,
};

use crate::headset_state::{HeadsetState, ShownFrame};

/// Constrained Baseline, level 5.1: every frame size Parallax asks for (up to 2 × 2048 wide).
const H264: &str = "avc1.42E033";

fn decoder_config() -> VideoDecoderConfig {
    let config = VideoDecoderConfig::new(H264);
    config.set_optimize_for_latency(true);
    config
}

/// The codecs this browser decodes, best first: H.264 where WebCodecs has it, JPEG always.
pub(crate) async fn codecs() -> Vec<Codec> {
    let has_decoder = js_sys::Reflect::has(&window(), &"VideoDecoder".into()).unwrap_or(false);
    let supported = async {
        let answer = VideoDecoder::is_config_supported(&decoder_config()).await;
        answer.ok()?.get_supported()
    };
    if has_decoder && supported.await == Some(true) {
        vec![Codec::H264, Codec::Jpeg]
    } else {
        vec![Codec::Jpeg]
    }
}

/// A frame sent to the decoder: its number, and what the page records once it is drawn.
struct Pending {
    frame: u64,
    model: Option<String>,
    shown: Option<ShownFrame>,
}

/// What the decoder's callbacks share with the connection.
struct Shared {
    state: HeadsetState,
    pending: RefCell<VecDeque<Pending>>,
    failed: Cell<bool>,
}

/// One render connection's H.264 decoder; closed when dropped.
pub(crate) struct VideoSink {
    decoder: VideoDecoder,
    shared: Rc<Shared>,
    awaiting_key: bool,
    on_output: Closure<dyn FnMut(VideoFrame)>,
    on_error: Closure<dyn FnMut(JsValue)>,
}

impl VideoSink {
    pub(crate) fn new(state: HeadsetState) -> Result<Self, JsValue> {
        let shared = Rc::new(Shared {
            state,
            pending: RefCell::default(),
            failed: Cell::new(false),
        });
        let drawn = shared.clone();
        let on_output = Closure::<dyn FnMut(VideoFrame)>::new(move |frame: VideoFrame| {
            draw(&drawn, &frame);
            frame.close();
        });
        let failed = shared.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            leptos::logging::warn!("the video decoder failed: {e:?}");
            failed.failed.set(true);
        });
        let decoder = open(&on_output, &on_error)?;
        Ok(Self {
            decoder,
            shared,
            awaiting_key: true,
            on_output,
            on_error,
        })
    }

    /// Hands an H.264 frame to the decoder; it is drawn when decoded. Returns whether a key
    /// frame must be asked for: the decoder failed and was made anew.
    pub(crate) fn decode(
        &mut self,
        header: &FrameHeader,
        data: &[u8],
        model: Option<String>,
        shown: Option<ShownFrame>,
    ) -> bool {
        let mut ask = false;
        if self.shared.failed.replace(false) {
            let _ = self.decoder.close();
            self.shared.pending.borrow_mut().clear();
            match open(&self.on_output, &self.on_error) {
                Ok(decoder) => self.decoder = decoder,
                Err(e) => leptos::logging::warn!("no new video decoder: {e:?}"),
            }
            self.awaiting_key = true;
            ask = true;
        }
        if self.awaiting_key && !header.key {
            return ask;
        }
        self.awaiting_key = false;
        let kind = if header.key {
            EncodedVideoChunkType::Key
        } else {
            EncodedVideoChunkType::Delta
        };
        let init = EncodedVideoChunkInit::new(&js_sys::Uint8Array::from(data), 0, kind);
        // The frame number: each decoded picture is matched to its frame by it.
        init.set_timestamp_f64(header.frame as f64);
        let chunk = EncodedVideoChunk::new(&init);
        self.shared.pending.borrow_mut().push_back(Pending {
            frame: header.frame,
            model,
            shown,
        });
        if let Err(e) = chunk.and_then(|chunk| self.decoder.decode(&chunk)) {
            leptos::logging::warn!("a frame could not be decoded: {e:?}");
            self.shared.failed.set(true);
        }
        ask
    }
}

impl Drop for VideoSink {
    fn drop(&mut self) {
        let _ = self.decoder.close();
    }
}

fn open(
    on_output: &Closure<dyn FnMut(VideoFrame)>,
    on_error: &Closure<dyn FnMut(JsValue)>,
) -> Result<VideoDecoder, JsValue> {
    let decoder = VideoDecoder::new(&VideoDecoderInit::new(
        on_error.as_ref().unchecked_ref(),
        on_output.as_ref().unchecked_ref(),
    ))?;
    decoder.configure(&decoder_config())?;
    Ok(decoder)
}

/// Draws a decoded picture on the page's canvas and records what it shows.
fn draw(shared: &Shared, frame: &VideoFrame) {
    let number = frame.timestamp() as u64;
    let mut found = None;
    {
        let mut pending = shared.pending.borrow_mut();
        while let Some(p) = pending.pop_front() {
            if p.frame == number {
                found = Some(p);
                break;
            }
        }
    }
    let state = shared.state;
    let Some(canvas) = state.canvas.get_untracked() else {
        return;
    };
    let (width, height) = (frame.display_width(), frame.display_height());
    if canvas.width() != width || canvas.height() != height {
        canvas.set_width(width);
        canvas.set_height(height);
    }
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok());
    if let Some(context) = context
        && context.draw_image_with_video_frame(frame, 0.0, 0.0).is_ok()
    {
        let (model, shown) = found.map_or((None, None), |p| (p.model, p.shown));
        state.drawn.set(model);
        state.shown.set(shown);
        state.frames.update(|n| *n += 1);
    }
}
