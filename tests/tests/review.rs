//! A design review's look on a real render host, through the headset library: the host renders
//! what `set_review` says — a part hidden, the section of a cut — and refuses what it cannot.

use parallax_core::device::{Codec, Extent, HostMessage, Pose};
use parallax_core::review::{CutPlane, PartOverride, Review};
use parallax_headset::{RenderConnection, RenderEvent};
use parallax_render::RgbaImage;
use parallax_tests::{ArrClient, TestServer, data_dir, image_of, ready_session, within};

/// The next frame, or the error the host answered with.
async fn next_frame(render: &mut RenderConnection) -> Result<RgbaImage, (String, String)> {
    loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Frame { picture, .. } => return Ok(image_of(picture)),
            RenderEvent::Message(HostMessage::Error { code, message }) => {
                return Err((code, message));
            }
            RenderEvent::Skipped { reason, .. } => panic!("{reason}"),
            RenderEvent::Message(_) => {}
        }
    }
}

/// A Ready session `session` with the bracket loaded on its render connection (JPEG: the same
/// picture gives the same frame, so "as before" can be checked exactly), and the bracket's
/// extent.
async fn bracket_on_a_host(
    session: &str,
) -> (tempfile::TempDir, TestServer, RenderConnection, Extent) {
    let (dir, server, _arr, url) = ready_session("review", session).await;
    let mut render = within(RenderConnection::connect_offering(
        &url,
        None,
        &[Codec::Jpeg],
    ))
    .await
    .unwrap();
    render.load("bracket").await.unwrap();
    let extent = loop {
        if let RenderEvent::Message(HostMessage::LoadDone { extent, .. }) =
            within(render.next()).await.unwrap()
        {
            break extent.unwrap();
        }
    };
    (dir, server, render, extent)
}

#[tokio::test]
async fn the_host_renders_the_review_it_is_sent_and_refuses_a_bad_one() {
    let (_dir, server, mut render, extent) = bracket_on_a_host("review").await;
    let pose: Pose = Pose::orbit(&extent, 40.0, 25.0, 1.0).pose(1, 320, 240);
    render.pose(pose).await.unwrap();
    let plain = next_frame(&mut render).await.unwrap();

    // The upright hidden: less of the view is covered.
    let mut review = Review::default();
    review.parts.insert(
        "Upright".into(),
        PartOverride {
            hidden: Some(true),
            ..PartOverride::default()
        },
    );
    render.set_review(review.clone()).await.unwrap();
    let hidden = next_frame(&mut render).await.unwrap();
    assert!(
        hidden.coverage() < plain.coverage() - 0.02,
        "{:.3} -> {:.3}",
        plain.coverage(),
        hidden.coverage()
    );

    // A cut through the middle on top: the frame changes again.
    let center: [f32; 3] = std::array::from_fn(|i| (extent.min[i] + extent.max[i]) / 2.0);
    review.cut_planes.push(CutPlane {
        point: center,
        normal: [1.0, 0.0, 0.0],
    });
    render.set_review(review.clone()).await.unwrap();
    let cut = next_frame(&mut render).await.unwrap();
    assert!(cut.share_differing(&hidden, 24) > 0.02);

    // Nine cut planes are refused with the reason; what was shown stays.
    let mut too_many = review;
    too_many.cut_planes = vec![too_many.cut_planes[0]; 9];
    render.set_review(too_many).await.unwrap();
    let (code, message) = next_frame(&mut render).await.unwrap_err();
    assert_eq!(code, "BadReview");
    assert!(message.contains("8 cut planes"), "{message}");

    // An empty review: the model as modelled, the very frame of the start.
    render.set_review(Review::default()).await.unwrap();
    assert_eq!(next_frame(&mut render).await.unwrap(), plain);
    within(render.bye()).await.unwrap();
    server.stop().await;
}

/// The share of `image`'s pixels that are clearly red.
fn red_share(image: &RgbaImage) -> f64 {
    let red = image
        .pixels
        .chunks_exact(4)
        .filter(|p| p[0] > 140 && p[1] < 100 && p[2] < 100)
        .count();
    red as f64 / (image.width * image.height) as f64
}

/// Width and height of what is drawn: the box around the pixels unlike the top-left corner's.
fn drawn_box(image: &RgbaImage) -> (u32, u32) {
    let background = image.pixel(0, 0);
    let (mut low, mut high) = ((u32::MAX, u32::MAX), (0, 0));
    for y in 0..image.height {
        for x in 0..image.width {
            let p = image.pixel(x, y);
            if (0..3).any(|i| p[i].abs_diff(background[i]) > 24) {
                low = (low.0.min(x), low.1.min(y));
                high = (high.0.max(x), high.1.max(y));
            }
        }
    }
    (high.0.saturating_sub(low.0), high.1.saturating_sub(low.1))
}

/// Tint, see-through and explode, as a render host draws them: judged on the pixels of the frames
/// it sends, not on the review it was told.
#[tokio::test]
async fn tint_see_through_and_explode_show_in_the_frames_a_host_sends() {
    let (_dir, server, mut render, extent) = bracket_on_a_host("looks").await;
    render
        .pose(Pose::orbit(&extent, 40.0, 25.0, 1.0).pose(1, 320, 240))
        .await
        .unwrap();
    let plain = next_frame(&mut render).await.unwrap();
    let look = |part: &str, look: PartOverride| {
        let mut review = Review::default();
        review.parts.insert(part.into(), look);
        review
    };

    // Tinted red: the upright and the base plate turn red where they are seen.
    let red = PartOverride {
        tint: Some([1.0, 0.0, 0.0]),
        ..PartOverride::default()
    };
    let mut tinted = look("Upright", red);
    tinted.parts.insert("Base plate".into(), red);
    render.set_review(tinted).await.unwrap();
    let frame = next_frame(&mut render).await.unwrap();
    assert!(
        red_share(&frame) > 0.05 && red_share(&frame) > 5.0 * red_share(&plain),
        "red: {:.3} -> {:.3}",
        red_share(&plain),
        red_share(&frame)
    );

    // The upright see-through: drawn, but the frame shows what lies behind it too. Not the same
    // as hidden, and not as modelled.
    let through = PartOverride {
        see_through: Some(true),
        ..PartOverride::default()
    };
    render.set_review(look("Upright", through)).await.unwrap();
    let see_through = next_frame(&mut render).await.unwrap();
    let hidden = PartOverride {
        hidden: Some(true),
        ..PartOverride::default()
    };
    render.set_review(look("Upright", hidden)).await.unwrap();
    let gone = next_frame(&mut render).await.unwrap();
    assert!(see_through.share_differing(&plain, 24) > 0.01);
    assert!(see_through.share_differing(&gone, 24) > 0.01);
    assert!(
        see_through.coverage() > gone.coverage() + 0.01,
        "see-through {:.3}, hidden {:.3}",
        see_through.coverage(),
        gone.coverage()
    );

    // Exploded all the way: the parts move apart, so what is drawn spreads wider or taller.
    render
        .set_review(Review {
            explode: 1.0,
            ..Review::default()
        })
        .await
        .unwrap();
    let exploded = next_frame(&mut render).await.unwrap();
    let (before, after) = (drawn_box(&plain), drawn_box(&exploded));
    assert!(
        after.0 > before.0 + 10 || after.1 > before.1 + 10,
        "drawn {before:?} -> {after:?}"
    );
    assert!(exploded.share_differing(&plain, 24) > 0.05);
    within(render.bye()).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablets_review_reaches_every_member_once_is_versioned_and_survives_a_restart() {
    use parallax_core::space::Role;
    use parallax_core::space_protocol::SpaceEvent;
    use parallax_headset::{ClientError, Coordinator, SpaceUpdate};
    use serde_json::json;
    use std::time::Duration;

    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "review").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account.0, &account.1)
        .await
        .unwrap();
    let tablet = coordinator
        .create_space("review", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    tablet.select("bracket").await.unwrap();
    let viewer = coordinator
        .join_space("review", "second tablet", Role::Tablet, None)
        .await
        .unwrap();
    let mut socket = viewer.connect().await.unwrap();
    while socket.next_within(Duration::from_millis(200)).await.is_ok() {}

    let review = json!({
        "parts": { "Upright": { "hidden": true }, "Gussets": { "tint": [1, 0, 0] } },
        "cutPlanes": [{ "point": [0, 0, 0], "normal": [1, 0, 0] }],
        "explode": 0.25
    });
    let seen = tablet.space().await.unwrap()["change"].as_u64().unwrap();
    let written = tablet
        .write(json!({ "review": review }), Some(seen))
        .await
        .unwrap();
    let as_review = |value: &serde_json::Value| serde_json::from_value::<Review>(value.clone());
    assert_eq!(
        as_review(&written["properties"]["review"]).unwrap(),
        as_review(&review).unwrap()
    );
    // Written again against the change it saw before: 412, nothing changes.
    let stale = tablet
        .write(json!({ "review": {} }), Some(seen))
        .await
        .unwrap_err();
    assert!(matches!(stale, ClientError::Stale(_)), "{stale:?}");
    // A review no host could render is refused with the reason.
    let nine = vec![json!({ "point": [0, 0, 0], "normal": [1, 0, 0] }); 9];
    let bad = tablet
        .write(json!({ "review": { "cutPlanes": nine } }), None)
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("/review/cutPlanes") && bad.to_string().contains("more than 8"),
        "{bad}"
    );

    // The member hears it once, in order.
    let mut heard = Vec::new();
    while let Ok(update) = socket.next_within(Duration::from_millis(500)).await {
        if let SpaceUpdate::Event {
            event: SpaceEvent::Review { review },
            ..
        } = update
        {
            heard.push(review);
        }
    }
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].parts["Upright"].hidden, Some(true));
    assert_eq!(heard[0].explode, 0.25);
    server.stop().await;

    // After a restart the space still shows it.
    let server = TestServer::start(dir.path()).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account.0, &account.1)
        .await
        .unwrap();
    let space = tablet.through(&coordinator).space().await.unwrap();
    assert_eq!(
        as_review(&space["properties"]["review"]).unwrap(),
        as_review(&review).unwrap()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_models_parts_are_listed_in_order_with_their_triangles() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "parts").await;
    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let parts = arr
        .call(
            reqwest::Method::GET,
            &format!("{}/v1/models/bracket/parts", server.url()),
            None,
        )
        .await;
    assert_eq!(parts.status, 200, "{}", parts.body);
    let names: Vec<&str> = parts.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Base plate", "Upright", "Gussets", "Bolt bosses"]);
    let triangles: u64 = parts.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["triangles"].as_u64().unwrap())
        .sum();
    let model = arr
        .call(
            reqwest::Method::GET,
            &format!("{}/v1/models/bracket", server.url()),
            None,
        )
        .await;
    assert_eq!(triangles, model.body["triangles"].as_u64().unwrap());
    // Its bounds: where cut planes go.
    let (min, max) = (&parts.body["bounds"]["min"], &parts.body["bounds"]["max"]);
    for axis in 0..3 {
        assert!(
            min[axis].as_f64().unwrap() < max[axis].as_f64().unwrap(),
            "{}",
            parts.body
        );
    }
    let missing = arr
        .call(
            reqwest::Method::GET,
            &format!("{}/v1/models/nothing/parts", server.url()),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    server.stop().await;
}

/// A glTF assembly, `Frame { Rail (mesh), Bolts { Bolt (mesh), Bolt (mesh) } }`, one triangle
/// each, moved apart.
fn assembly_gltf() -> String {
    use base64::Engine;
    let corners: Vec<u8> = [[0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let bin = base64::engine::general_purpose::STANDARD.encode(corners);
    format!(
        r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],
        "nodes":[
            {{"name":"Frame","children":[1,2]}},
            {{"name":"Rail","mesh":0}},
            {{"name":"Bolts","children":[3,4]}},
            {{"name":"Bolt","mesh":0,"translation":[0,0,1]}},
            {{"name":"Bolt","mesh":0,"translation":[0,0,2]}}],
        "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}}}}]}}],
        "buffers":[{{"byteLength":36,"uri":"data:application/octet-stream;base64,{bin}"}}],
        "bufferViews":[{{"buffer":0,"byteLength":36}}],
        "accessors":[{{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}}]}}"#
    )
}

#[tokio::test]
async fn an_assemblys_parts_are_a_tree_kept_beside_its_mesh() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "tree").await;
    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let uploaded = parallax_tests::upload(
        &server,
        &arr.token,
        &[("assembly.gltf", assembly_gltf().into_bytes())],
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let id = uploaded.body["id"].as_str().unwrap().to_string();
    let parts_of = |id: String| {
        let arr = &arr;
        let url = format!("{}/v1/models/{id}/parts", server.url());
        async move { arr.call(reqwest::Method::GET, &url, None).await }
    };
    let parts = parts_of(id.clone()).await;
    assert_eq!(parts.status, 200, "{}", parts.body);
    let frame = &parts.body["parts"][0];
    assert_eq!(
        (frame["name"].as_str(), frame["triangles"].as_u64()),
        (Some("Frame"), Some(3))
    );
    let bolts = &frame["children"][1];
    assert_eq!(bolts["path"], "Frame/Bolts");
    let paths: Vec<&str> = bolts["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["Frame/Bolts/Bolt", "Frame/Bolts/Bolt (2)"]);
    assert_eq!(bolts["bounds"]["max"][2], 2.0, "{}", bolts);

    // It was written once, at conversion; a model converted before parts lists is converted
    // again when its parts are first asked for.
    let kept: Vec<_> = walk(&dir.path().join("models"))
        .into_iter()
        .filter(|p| p.ends_with(".parallax-parts.json"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    std::fs::remove_file(&kept[0]).unwrap();
    let again = parts_of(id).await;
    assert_eq!(again.body, parts.body);
    assert!(kept[0].exists());

    // The gearbox sample is an assembly too.
    let gearbox = parts_of("gearbox".into()).await;
    let roots: Vec<&str> = gearbox.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["Housing", "Input shaft", "Output shaft"]);
    assert_eq!(
        gearbox.body["parts"][0]["children"][1]["path"],
        "Housing/Cover"
    );
    server.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
