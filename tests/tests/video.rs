//! Frames as H.264 on a real render host, through the headset library: negotiated in hello, key
//! frames where a decoder needs them, a sharper frame when the view rests, and pictures that match
//! the JPEG path's.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parallax_core::device::{Codec, DeviceMessage, Extent, HostMessage, Pose};
use parallax_headset::{FrameDecoder, Picture, RenderConnection, RenderEvent};
use parallax_render::{RgbaImage, psnr};
use parallax_server::config::PoolArgs;
use parallax_tests::{ArrClient, TestServer, data_dir, image_of, ready_session, within};
use tokio_tungstenite::tungstenite::Message;

async fn setup() -> (tempfile::TempDir, TestServer, ArrClient, String) {
    ready_session("video", "review").await
}

/// Loads `model` and returns its extent.
async fn load(render: &mut RenderConnection, model: &str) -> Extent {
    render.load(model).await.unwrap();
    loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Message(HostMessage::LoadDone { extent, .. }) => {
                return extent.expect("a loaded model has an extent");
            }
            RenderEvent::Message(HostMessage::LoadFailed { reason, .. }) => panic!("{reason}"),
            _ => {}
        }
    }
}

/// The next frame (skipping other events), with its header.
async fn next_frame(render: &mut RenderConnection) -> (parallax_core::FrameHeader, Picture) {
    loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Frame {
                header, picture, ..
            } => return (header, picture),
            RenderEvent::Skipped { reason, .. } => panic!("a frame was skipped: {reason}"),
            RenderEvent::Message(HostMessage::Error { message, .. }) => panic!("{message}"),
            RenderEvent::Message(_) => {}
        }
    }
}

/// The frame answering `pose` (frames of earlier poses, and rest frames, are passed over).
async fn frame_for(
    render: &mut RenderConnection,
    pose: Pose,
) -> (parallax_core::FrameHeader, RgbaImage) {
    render.pose(pose).await.unwrap();
    loop {
        let (header, picture) = next_frame(render).await;
        if header.pose == pose.id {
            return (header, image_of(picture));
        }
    }
}

fn orbit(extent: &Extent, id: u64) -> Pose {
    Pose::orbit(extent, 20.0 + id as f32 * 7.0, 25.0, 1.0).pose(id, 320, 240)
}

#[tokio::test]
async fn h264_frames_decode_to_the_pictures_the_jpeg_path_shows() {
    let (_dir, server, _arr, url) = setup().await;
    let mut pictures = Vec::new();
    let mut poses = Vec::new();
    for codec in [Codec::H264, Codec::Jpeg] {
        let mut render = within(RenderConnection::connect_offering(&url, None, &[codec]))
            .await
            .unwrap();
        assert_eq!(render.codec(), codec, "the host speaks what was offered");
        let extent = load(&mut render, "gear").await;
        let mut frames = Vec::new();
        poses.clear();
        for id in 1..=6 {
            poses.push(orbit(&extent, id));
            let (header, image) = frame_for(&mut render, orbit(&extent, id)).await;
            assert_eq!(header.codec, codec);
            assert_eq!((image.width, image.height), (320, 240));
            // Only the first frame is a key frame: no periodic ones on a reliable link.
            assert_eq!(header.key, codec == Codec::Jpeg || id == 1, "frame {id}");
            frames.push(image);
        }
        within(render.bye()).await.unwrap();
        pictures.push(frames);
    }
    // The same poses rendered here, on the same renderer, unencoded.
    for ((pose, video), jpeg) in poses.iter().zip(&pictures[0]).zip(&pictures[1]) {
        let raw = raw_gear(pose);
        let (h264_db, jpeg_db) = (psnr(&raw, video), psnr(&raw, jpeg));
        eprintln!(
            "pose {}: H.264 {h264_db:.2} dB, JPEG {jpeg_db:.2} dB",
            pose.id
        );
        // Both close to the render (a stale or garbled picture would be far below), H.264 within
        // 1.5 dB of JPEG: its first frames, before the rate control settles, a little under it.
        assert!(jpeg_db > 35.0, "pose {}: JPEG {jpeg_db:.1} dB", pose.id);
        assert!(
            h264_db > jpeg_db - 1.5,
            "pose {}: H.264 {h264_db:.1} dB, JPEG {jpeg_db:.1} dB",
            pose.id
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn key_frames_come_first_on_request_for_a_new_model_and_size_and_after_a_reset() {
    let (_dir, server, _arr, url) = setup().await;
    let mut render = within(RenderConnection::connect(&url)).await.unwrap();
    assert_eq!(render.codec(), Codec::H264, "the library prefers H.264");
    let extent = load(&mut render, "gear").await;
    let (first, _) = frame_for(&mut render, orbit(&extent, 1)).await;
    let (second, _) = frame_for(&mut render, orbit(&extent, 2)).await;
    assert!(first.key, "a new device's first frame is a key frame");
    assert!(!second.key, "then frames predict from the one before");

    // Asked for: the next frame is key, even without a new pose.
    render.request_keyframe().await.unwrap();
    let (asked, _) = next_frame(&mut render).await;
    assert!(asked.key, "a keyframe request yields one");
    assert_eq!(asked.pose, 2);

    // A new frame size starts the stream afresh.
    let (resized, image) = frame_for(&mut render, {
        let mut pose = orbit(&extent, 3);
        pose.width = 160;
        pose.height = 120;
        pose
    })
    .await;
    assert!(resized.key);
    assert_eq!((image.width, image.height), (160, 120));

    // So does a new model.
    let extent = load(&mut render, "bracket").await;
    let (new_model, _) = frame_for(&mut render, orbit(&extent, 4)).await;
    assert!(new_model.key, "a new model starts with a key frame");

    // A decoder that lost its state skips frames until the key frame it asked for.
    render.reset_decoder().await.unwrap();
    render.pose(orbit(&extent, 5)).await.unwrap();
    let recovered = loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Frame {
                header, picture, ..
            } => break (header, image_of(picture)),
            RenderEvent::Skipped { header, .. } => assert!(!header.key),
            RenderEvent::Message(_) => {}
        }
    };
    assert!(
        recovered.0.key,
        "the first frame shown again is a key frame"
    );
    assert!(recovered.1.coverage() > 0.02);
    within(render.bye()).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_decoder_error_is_recovered_from_with_a_requested_key_frame() {
    let (_dir, server, _arr, url) = setup().await;
    let (mut socket, _) = within(tokio_tungstenite::connect_async(&url))
        .await
        .unwrap();
    let say = |m: DeviceMessage| Message::text(m.to_json());
    let hello = DeviceMessage::Hello {
        codecs: vec![Codec::H264],
    };
    socket.send(say(hello)).await.unwrap();
    socket
        .send(say(DeviceMessage::LoadModel {
            model: parallax_core::ModelId::new("gear"),
        }))
        .await
        .unwrap();
    let mut decoder = FrameDecoder::default();
    let mut extent = None;
    let mut pose_id = 0;
    let mut frames = Vec::new();
    let mut asked = false;
    while frames.len() < 4 {
        let message = within(socket.next()).await.unwrap().unwrap();
        match message {
            Message::Text(text) => {
                if let HostMessage::LoadDone { extent: e, .. } = HostMessage::parse(&text).unwrap()
                {
                    extent = e;
                    pose_id += 1;
                    let pose = orbit(extent.as_ref().unwrap(), pose_id);
                    socket.send(say(DeviceMessage::Pose(pose))).await.unwrap();
                }
            }
            Message::Binary(bytes) => {
                let (header, data) = parallax_core::FrameHeader::decode(&bytes).unwrap();
                frames.push(header);
                if frames.len() == 2 {
                    // The second frame reaches a decoder that never saw the first: it fails,
                    // and the device asks for a key frame.
                    let mut fresh = FrameDecoder::default();
                    assert!(fresh.decode(&header, data).is_err(), "a P-frame alone");
                    decoder = fresh;
                    socket.send(say(DeviceMessage::Keyframe)).await.unwrap();
                    asked = true;
                    continue;
                }
                let decoded = decoder.decode(&header, data);
                if asked {
                    assert!(header.key, "the frame after the request is a key frame");
                    asked = false;
                }
                assert!(
                    matches!(decoded, Ok(Picture::Rgba { width: 320, .. })),
                    "frame {} did not decode",
                    header.frame
                );
                // Keep the conversation going.
                pose_id += 1;
                let pose = orbit(extent.as_ref().unwrap(), pose_id);
                socket.send(say(DeviceMessage::Pose(pose))).await.unwrap();
            }
            _ => {}
        }
    }
    server.stop().await;
}

/// The gear as the host renders it for `pose`, unencoded, on this process' own renderer.
fn raw_gear(pose: &Pose) -> RgbaImage {
    let mut renderer = parallax_render::Renderer::new().expect("lavapipe");
    let gear = renderer.upload(&parallax_render::samples::gear()).unwrap();
    let view = parallax_render::View {
        eye: pose.position.into(),
        target: pose.target.into(),
        up: pose.up.into(),
        fov_y: pose.fov_y_degrees.to_radians(),
        width: pose.width,
        height: pose.height,
    };
    renderer.render(&gear, glam::Mat4::IDENTITY, &view).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_view_at_rest_gets_one_sharp_key_frame_and_odd_sizes_are_refused_for_h264() {
    // A host whose operator fixed a bitrate far below what the frame size asks for.
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "video").await;
    let pool = PoolArgs {
        standard: 1,
        standard_standby: 0,
        premium: 0,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let server = TestServer::start_with(dir.path(), &pool).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let config = server.remote_host(30, Some(100_000)).await;
    tokio::spawn(parallax_host::run(config, stop.clone()));
    let mut session = arr.put("starved", "Standard", 30).await.body;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while session["renderUrl"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Ready session: {session}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        session = arr.get("starved").await.body;
    }
    let url = session["renderUrl"].as_str().unwrap().to_string();

    let mut render = within(RenderConnection::connect(&url)).await.unwrap();
    let extent = load(&mut render, "gear").await;
    let mut last = None;
    for id in 1..=3 {
        last = Some(frame_for(&mut render, orbit(&extent, id)).await);
    }
    let (moving, moving_image) = last.unwrap();
    assert!(!moving.key);
    // No pose since: one more frame of pose 3 comes, a key frame, sharper; then nothing.
    let (rest, picture) = next_frame(&mut render).await;
    assert_eq!(rest.pose, 3, "the sharp frame is of the resting pose");
    assert!(rest.key, "the sharp frame is a key frame");
    let raw = raw_gear(&orbit(&extent, 3));
    let (blurred, sharp) = (psnr(&raw, &moving_image), psnr(&raw, &image_of(picture)));
    eprintln!("100 kbit/s: moving {blurred:.1} dB, at rest {sharp:.1} dB");
    assert!(
        sharp > blurred + 3.0,
        "at rest {sharp:.1} dB, moving {blurred:.1} dB"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(800), render.next()).await;
    assert!(quiet.is_err(), "only one sharp frame");

    let mut odd = orbit(&extent, 4);
    odd.width = 321;
    render.pose(odd).await.unwrap();
    let RenderEvent::Message(HostMessage::Error { code, message }) =
        within(render.next()).await.unwrap()
    else {
        panic!("expected an error for the odd size");
    };
    let refused = (code, message);
    assert_eq!(refused.0, "BadPose");
    assert!(refused.1.contains("even"), "{}", refused.1);
    within(render.bye()).await.unwrap();

    // A device that decodes nothing this host sends is told so.
    let (mut socket, _) = within(tokio_tungstenite::connect_async(&url))
        .await
        .unwrap();
    let hello = r#"{"type":"hello","codecs":["av1"]}"#;
    socket.send(Message::text(hello)).await.unwrap();
    let closed = loop {
        match within(socket.next()).await {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(u16::from(closed.code), 1008);
    assert!(
        closed.reason.contains("no frame format in common"),
        "{}",
        closed.reason
    );
    server.stop().await;
}
