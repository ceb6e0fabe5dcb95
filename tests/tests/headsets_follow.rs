//! A tablet selects; every connected headset receives the selection and a rendered frame of it.

use parallax_core::ChangeNumber;
use parallax_headset::{Event, Headset, HeadsetError};
use parallax_tests::{TestServer, data_dir, decode_jpeg, within};

/// Reads events until a frame arrives; returns the selection seen on the way and the frame.
async fn next_frame(headset: &mut Headset) -> (Option<String>, ChangeNumber, Vec<u8>) {
    let mut model = None;
    loop {
        match within(headset.next_event()).await.expect("an event") {
            Event::Selection { model: m, .. } => model = m.map(|m| m.id.0),
            Event::Frame { header, jpeg } => return (model, header.change, jpeg),
            Event::Error { message, .. } => panic!("server error: {message}"),
        }
    }
}

#[tokio::test]
async fn every_headset_gets_a_rendered_frame_of_the_selected_model() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    let mut headsets = Vec::new();
    for name in ["left", "right"] {
        let mut headset = within(Headset::connect(&server.url(), name)).await.unwrap();
        // Nothing is selected yet on a fresh coordinator.
        let event = within(headset.next_event()).await.unwrap();
        assert_eq!(
            event,
            Event::Selection {
                change: ChangeNumber(0),
                model: None
            }
        );
        headsets.push(headset);
    }

    let (status, body) = server.select("gear").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["id"], "gear");
    let mut gear_frames = Vec::new();
    for headset in &mut headsets {
        let (model, change, jpeg) = next_frame(headset).await;
        assert_eq!(model.as_deref(), Some("gear"));
        assert_eq!(change, ChangeNumber(1));
        let (width, height, pixels) = decode_jpeg(&jpeg);
        assert_eq!((width, height), (1280, 720));
        // A part on a background, not a flat image: the brightest pixel is far from the darkest.
        let (lo, hi) = (pixels.iter().min().unwrap(), pixels.iter().max().unwrap());
        assert!(hi - lo > 100, "frame looks flat ({lo}..{hi})");
        gear_frames.push(pixels);
    }

    server.select("bracket").await;
    for (headset, gear) in headsets.iter_mut().zip(&gear_frames) {
        let (model, change, jpeg) = next_frame(headset).await;
        assert_eq!(model.as_deref(), Some("bracket"));
        assert_eq!(change, ChangeNumber(2));
        let (_, _, pixels) = decode_jpeg(&jpeg);
        let differing = pixels
            .iter()
            .zip(gear)
            .filter(|(a, b)| a.abs_diff(**b) > 24)
            .count();
        assert!(
            differing > pixels.len() / 50,
            "bracket frame looks like the gear frame"
        );
    }

    let close = within(headsets.pop().unwrap().bye()).await.unwrap();
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1000, "bye")
    );
    server.stop().await;
}

#[tokio::test]
async fn selecting_the_model_already_shown_sends_nothing_new() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    server.select("shaft").await;
    let mut headset = within(Headset::connect(&server.url(), "h")).await.unwrap();
    let (_, change, _) = next_frame(&mut headset).await;

    let (status, body) = server.select("shaft").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["change"], change.0,
        "no new change number for the same model"
    );
    // The next thing this headset hears of is the next real change.
    server.select("gear").await;
    let (model, next, _) = next_frame(&mut headset).await;
    assert_eq!(
        (model.as_deref(), next),
        (Some("gear"), ChangeNumber(change.0 + 1))
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_model_is_refused_and_the_selection_stays() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    server.select("gear").await;
    let (status, body) = server.select("no-such-model").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NotFound");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model")
    );

    let mut headset = within(Headset::connect(&server.url(), "h")).await.unwrap();
    let (model, change, _) = next_frame(&mut headset).await;
    assert_eq!((model.as_deref(), change), (Some("gear"), ChangeNumber(1)));
    server.stop().await;
}

#[tokio::test]
async fn the_selection_survives_a_restart_and_shutdown_closes_with_a_reason() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    server.select("gear").await;
    server.select("shaft").await;
    let mut headset = within(Headset::connect(&server.url(), "h")).await.unwrap();
    next_frame(&mut headset).await;

    server.stop().await;
    match within(headset.next_event()).await {
        Err(HeadsetError::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
        }
        other => panic!("expected a close on shutdown, got {other:?}"),
    }
    assert!(dir.path().join("parallax.db").is_file());

    let server = TestServer::start(dir.path()).await;
    let mut headset = within(Headset::connect(&server.url(), "h")).await.unwrap();
    let (model, change, jpeg) = next_frame(&mut headset).await;
    assert_eq!((model.as_deref(), change), (Some("shaft"), ChangeNumber(2)));
    assert!(!jpeg.is_empty());
    server.stop().await;
}
