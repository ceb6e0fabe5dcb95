//! STEP uploads as a tablet's user makes them, on real files (render/step/tests/data/SOURCES.md): the
//! upload returns at once with the model `Converting`, then it is `Ready` with its parts and a
//! thumbnail in its own colours, or `Failed` with the reason, and a failed model cannot be shown.

use parallax_tests::{SignedIn, get_json, upload};
use serde_json::{Value, json};

fn real(file: &str) -> Vec<u8> {
    let path = format!(
        "{}/../render/step/tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Uploads `bytes` as `name`: accepted at once, `Converting`; returns the model once its
/// conversion has ended.
async fn converted(signed_in: &SignedIn, name: &str, bytes: Vec<u8>) -> Value {
    let token = &signed_in.coordinator.token;
    let answer = upload(&signed_in.server, token, &[(name, bytes)]).await;
    assert_eq!(answer.status, 202, "{name}: {}", answer.body);
    assert_eq!(answer.body["status"], "Converting");
    assert_eq!(answer.body["format"], "STEP");
    let id = answer.body["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        let model = get_json(&signed_in.server, &format!("/v1/models/{id}"), token).await;
        if model["status"] != "Converting" {
            return model;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name} was still converting after 30 s");
}

/// Model `id`'s thumbnail, as its account asks for it.
async fn thumbnail(signed_in: &SignedIn, id: &str) -> reqwest::Response {
    signed_in
        .server
        .http()
        .get(format!(
            "{}/v1/models/{id}/thumbnail.png",
            signed_in.server.url()
        ))
        .bearer_auth(&signed_in.coordinator.token)
        .send()
        .await
        .unwrap()
}

/// The tablet `member` of space `review` shows model `id` to everyone.
async fn show(signed_in: &SignedIn, member: &str, id: &str) -> reqwest::Response {
    signed_in
        .server
        .http()
        .patch(format!(
            "{}/v1/spaces/review/properties",
            signed_in.server.url()
        ))
        .bearer_auth(&signed_in.coordinator.token)
        .header("parallax-member", member)
        .json(&json!({ "selectedModel": id }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_upload_becomes_ready_with_its_parts_and_colours() {
    let signed_in = SignedIn::start().await;
    let token = &signed_in.coordinator.token;
    let model = converted(
        &signed_in,
        "XT60.step",
        real("AMASS_XT60-F_1x02_P7.2mm_Vertical.step"),
    )
    .await;
    assert_eq!(model["status"], "Ready", "{model}");
    assert!(model["triangles"].as_u64().unwrap() > 1000, "{model}");
    let id = model["id"].as_str().unwrap();
    let parts = get_json(&signed_in.server, &format!("/v1/models/{id}/parts"), token).await;
    assert_eq!(parts["parts"][0]["name"], "XT60 female v5", "{parts}");
    let size: Vec<f64> = (0..3)
        .map(|i| {
            parts["bounds"]["max"][i].as_f64().unwrap()
                - parts["bounds"]["min"][i].as_f64().unwrap()
        })
        .collect();
    assert!((size[1] - 8.1).abs() < 0.05, "{size:?} mm");

    // The thumbnail is drawn in the file's colours: the housing's yellow fills much of it.
    let png = thumbnail(&signed_in, id).await;
    assert_eq!(png.status(), 200);
    let image = parallax_render::decode_png(&png.bytes().await.unwrap()).unwrap();
    let yellow = image
        .pixels
        .chunks_exact(4)
        .filter(|p| p[0] > 120 && p[1] > 70 && (p[2] as u16) * 2 < p[1] as u16)
        .count();
    assert!(
        yellow > (image.width * image.height) as usize / 20,
        "{yellow} yellow pixels"
    );

    // An assembly: its products under their group, in place.
    let assembly = converted(&signed_in, "caps.stp", real("I22_2_5_16withEPL22_6_16.stp")).await;
    assert_eq!(assembly["status"], "Ready", "{assembly}");
    let id = assembly["id"].as_str().unwrap();
    let parts = get_json(&signed_in.server, &format!("/v1/models/{id}/parts"), token).await;
    let group = &parts["parts"][0];
    assert_eq!(group["children"].as_array().unwrap().len(), 2, "{parts}");
    assert_eq!(
        group["children"][1]["path"],
        "Open CASCADE STEP translator 6.3 2/Open CASCADE STEP translator 6.3 2.2"
    );

    // It can be shown in a space.
    let tablet = signed_in.space("review", "default").await;
    let shown = show(&signed_in, &tablet.token, id).await;
    assert_eq!(shown.status(), 200);
    signed_in.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_file_that_does_not_convert_says_why_and_cannot_be_shown() {
    let signed_in = SignedIn::start().await;
    let token = &signed_in.coordinator.token;
    let empty = b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\n\
        FILE_NAME('e','',(''),(''),'','','');\nFILE_SCHEMA(('AUTOMOTIVE_DESIGN'));\nENDSEC;\n\
        DATA;\nENDSEC;\nEND-ISO-10303-21;\n";
    let model = converted(&signed_in, "empty.step", empty.to_vec()).await;
    assert_eq!(model["status"], "Failed", "{model}");
    let reason = model["failure"].as_str().unwrap();
    assert!(reason.contains("empty.step"), "{reason}");
    let id = model["id"].as_str().unwrap();

    // Listed, with its reason, for its owner to delete.
    let list = get_json(&signed_in.server, "/v1/models", token).await;
    let listed = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap();
    assert_eq!(listed["failure"], reason);

    let tablet = signed_in.space("review", "default").await;
    let refused = show(&signed_in, &tablet.token, id).await;
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be converted"),
        "{body}"
    );
    let thumbnail = thumbnail(&signed_in, id).await;
    assert_eq!(thumbnail.status(), 409);
    let deleted = signed_in
        .server
        .http()
        .delete(format!("{}/v1/models/{id}", signed_in.server.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    signed_in.server.stop().await;
}
