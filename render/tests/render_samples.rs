//! Renders the sample models on the real GPU device (lavapipe where there is no GPU) and checks
//! what a person would see: a part on screen, not an empty viewport, and different parts look
//! different.

use glam::Mat4;
use parallax_core::yuv::I420;
use parallax_render::{Eye, Look, Mesh, PartLook, Renderer, RgbaImage, View, encode_jpeg, samples};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

fn render(renderer: &mut Renderer, id: &str) -> RgbaImage {
    let sample = samples::SAMPLES.iter().find(|s| s.id == id).unwrap();
    let model = renderer.upload(&(sample.build)()).unwrap();
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    renderer.render(&model, Mat4::IDENTITY, &view).unwrap()
}

#[test]
fn sample_models_render_visibly_and_distinctly() {
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    eprintln!("adapter: {:?}", renderer.adapter());

    let gear = render(&mut renderer, "gear");
    let bracket = render(&mut renderer, "bracket");
    assert_eq!(gear.pixels.len(), (WIDTH * HEIGHT * 4) as usize);

    // Framing fits the part to the view, so it fills a good share of the frame but not all of it.
    for (name, image) in [("gear", &gear), ("bracket", &bracket)] {
        let covered = image.coverage();
        assert!(
            (0.05..0.95).contains(&covered),
            "{name} covers {covered:.3} of the frame"
        );
    }
    // The corner is background: the clear colour, as sRGB.
    let corner = gear.pixel(0, 0);
    let corner = RgbaImage {
        width: 1,
        height: 1,
        pixels: corner.to_vec(),
    };
    assert_eq!(corner.coverage(), 0.0, "{:?}", corner.pixels);

    let difference = gear.mean_difference(&bracket);
    assert!(
        difference > 5.0,
        "gear and bracket look alike (mean difference {difference:.2})"
    );

    // Rendering is deterministic: the same model gives the same picture.
    let again = render(&mut renderer, "gear");
    assert!(gear.mean_difference(&again) < 0.5);
}

#[test]
fn frames_encode_to_decodable_jpeg() {
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let image = render(&mut renderer, "shaft");
    let jpeg = encode_jpeg(&image, 80).unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG start-of-image marker");
    assert_eq!(
        &jpeg[jpeg.len() - 2..],
        &[0xFF, 0xD9],
        "JPEG end-of-image marker"
    );
    // A compressed part on a flat background is far smaller than the raw pixels.
    assert!(jpeg.len() < image.pixels.len() / 8, "{} bytes", jpeg.len());
}

#[test]
fn a_bad_viewport_is_an_error_not_a_panic() {
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let model = renderer.upload(&samples::gear()).unwrap();
    let mut view = View::framing(&model.bounds, 0, 100);
    assert!(renderer.render(&model, Mat4::IDENTITY, &view).is_err());
    view.width = 100_000;
    assert!(renderer.render(&model, Mat4::IDENTITY, &view).is_err());
}

/// One renderer draws frames of changing sizes (a headset's window resized): each frame has its
/// own size and shows the whole part, as a fresh renderer would draw it.
#[test]
fn one_renderer_draws_at_each_new_size() {
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let mesh = samples::gear();
    let model = renderer.upload(&mesh).unwrap();
    // Its buffers: 16 bytes a vertex, 2 an index (a small part's are 16-bit, the buffer a whole
    // number of words), 112 a part's state (the gear is one part).
    assert_eq!(
        model.gpu_bytes(),
        (mesh.vertices.len() * 16 + (mesh.indices.len() * 2).next_multiple_of(4) + 112) as u64
    );
    for (w, h) in [(320, 180), (200, 300), (320, 180)] {
        let view = View::framing(&model.bounds, w, h);
        let image = renderer.render(&model, Mat4::IDENTITY, &view).unwrap();
        assert_eq!((image.width, image.height), (w, h));
        let mut fresh = Renderer::new().expect("a wgpu adapter");
        let fresh_model = fresh.upload(&mesh).unwrap();
        let alone = fresh.render(&fresh_model, Mat4::IDENTITY, &view).unwrap();
        assert!(
            image.share_differing(&alone, 24) < 0.005,
            "{w}x{h} differs from a fresh renderer's frame"
        );
    }
}

/// The two eyes of a headset, 64 mm apart (the part is in millimetres, so 64 units), drawn into
/// one side-by-side frame: each half is the mono frame of that eye, and the two differ.
#[test]
fn a_stereo_frame_is_the_two_eyes_mono_frames_side_by_side() {
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let mesh = samples::gear();
    let model = renderer.upload(&mesh).unwrap();
    let centre = View::framing(&model.bounds, 320, 240);
    let right = (centre.target - centre.eye).cross(centre.up).normalize();
    let eye = |offset: f32| View {
        eye: centre.eye + right * offset,
        target: centre.target + right * offset,
        ..centre
    };
    let (left, right) = (eye(-32.0), eye(32.0));
    let eyes = [Eye::of(&left), Eye::of(&right)];
    let stereo = renderer
        .render_eyes(Some(&model), Mat4::IDENTITY, &eyes, 320, 240)
        .unwrap();
    assert_eq!((stereo.width, stereo.height), (640, 240));
    let half = |x0: u32| RgbaImage {
        width: 320,
        height: 240,
        pixels: (0..240)
            .flat_map(|y| {
                let row = ((y * 640 + x0) * 4) as usize;
                stereo.pixels[row..row + 320 * 4].to_vec()
            })
            .collect(),
    };
    let mono_left = renderer.render(&model, Mat4::IDENTITY, &left).unwrap();
    let mono_right = renderer.render(&model, Mat4::IDENTITY, &right).unwrap();
    assert!(half(0).share_differing(&mono_left, 24) < 0.005);
    assert!(half(320).share_differing(&mono_right, 24) < 0.005);
    assert!(
        mono_left.share_differing(&mono_right, 24) > 0.02,
        "the eyes see different pictures"
    );
    // No eyes, or three, is an error, not a panic.
    assert!(
        renderer
            .render_eyes(Some(&model), Mat4::IDENTITY, &[], 320, 240)
            .is_err()
    );
    let three = [eyes[0]; 3];
    assert!(
        renderer
            .render_eyes(Some(&model), Mat4::IDENTITY, &three, 320, 240)
            .is_err()
    );
}

#[test]
fn the_gpu_converts_a_frame_to_the_i420_the_cpu_makes_of_it() {
    let Ok(mut renderer) = Renderer::new() else {
        panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
    };
    let model = renderer.upload(&samples::gear()).unwrap();
    // 320 wide: converted on the GPU; 322: on the CPU (not a multiple of 8).
    for (width, height) in [(320, 240), (322, 240)] {
        let view = View::framing(&model.bounds, width, height);
        let eyes = [Eye::of(&view)];
        let rgba = renderer
            .render_eyes(Some(&model), Mat4::IDENTITY, &eyes, width, height)
            .unwrap();
        let on_cpu = I420::from_rgba(&rgba.pixels, width as usize, height as usize, None);
        let i420 = renderer
            .render_eyes_i420(
                (Some(&model), &Look::default()),
                Mat4::IDENTITY,
                &eyes,
                width,
                height,
            )
            .unwrap();
        assert_eq!((i420.width, i420.height), (width as usize, height as usize));
        let differing = on_cpu
            .data
            .iter()
            .zip(&i420.data)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{width}x{height}: {differing} bytes differ");
        // The picture is there: luma spans from the background to lit faces.
        let (lo, hi) = (i420.y().iter().min(), i420.y().iter().max());
        assert!(hi.unwrap() - lo.unwrap() > 100, "{width}x{height}");
    }
    let eyes = [Eye::of(&View::framing(&model.bounds, 321, 240))];
    assert!(matches!(
        renderer.render_eyes_i420(
            (Some(&model), &Look::default()),
            Mat4::IDENTITY,
            &eyes,
            321,
            240
        ),
        Err(parallax_render::RenderError::OddSize { width: 321, .. })
    ));
}

/// A model whose parts need both 16-bit indices (small parts, counted from a chunk's first
/// vertex) and 32-bit ones (a part of more vertices than 16 bits count): each part draws where
/// and as it draws alone.
#[test]
fn parts_on_16_and_32_bit_indices_each_draw_as_they_draw_alone() {
    let parts = [
        ("gear", samples::gear()),
        ("dense", samples::dense_shaft(300_000)),
        ("shaft", samples::shaft()),
    ];
    assert!(
        parts[1].1.vertices.len() > 65_536,
        "the dense part needs 32 bits"
    );
    let mut mixed = Mesh::default();
    for (name, part) in &parts {
        mixed.begin_part(*name);
        let first = mixed.vertices.len() as u32;
        mixed.vertices.extend(&part.vertices);
        mixed.indices.extend(part.indices.iter().map(|i| i + first));
    }
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let model = renderer.upload(&mixed).unwrap();
    // The small parts' indices at 2 bytes, the dense part's at 4.
    let small = parts[0].1.indices.len() + parts[2].1.indices.len();
    assert_eq!(
        model.gpu_bytes(),
        (mixed.vertices.len() * 16
            + (small * 2).next_multiple_of(4)
            + parts[1].1.indices.len() * 4
            + 3 * 112) as u64
    );
    for (shown, (name, part)) in parts.iter().enumerate() {
        let alone = renderer.upload(part).unwrap();
        let view = View::framing(&alone.bounds, WIDTH, HEIGHT);
        let expected = renderer.render(&alone, Mat4::IDENTITY, &view).unwrap();
        let look = Look {
            parts: (0..parts.len())
                .map(|i| PartLook {
                    hidden: i != shown,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let eye = [Eye::of(&view)];
        let drawn = renderer
            .render_look((Some(&model), &look), Mat4::IDENTITY, &eye, WIDTH, HEIGHT)
            .unwrap();
        assert!(expected.coverage() > 0.05, "{name} shows");
        let differing = drawn.share_differing(&expected, 8);
        assert!(
            differing < 0.001,
            "{name}: {differing} of the pixels differ"
        );
    }
    // As modelled, parts are drawn in runs, switching index buffers between them: the same
    // picture as drawing them one by one (which any look but the modelled one does).
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    let in_runs = renderer.render(&model, Mat4::IDENTITY, &view).unwrap();
    let one_by_one = Look {
        parts: vec![PartLook::default(); parts.len()],
        ..Default::default()
    };
    let eye = [Eye::of(&view)];
    let each = renderer
        .render_look(
            (Some(&model), &one_by_one),
            Mat4::IDENTITY,
            &eye,
            WIDTH,
            HEIGHT,
        )
        .unwrap();
    assert_eq!(renderer.last_frame().parts_drawn, 3);
    assert!(in_runs.coverage() > 0.05);
    assert_eq!(in_runs.share_differing(&each, 0), 0.0);
}

#[test]
fn a_transparent_frame_covers_exactly_the_model_in_the_colours_it_has_opaque() {
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let sample = samples::SAMPLES.iter().find(|s| s.id == "gear").unwrap();
    let model = renderer.upload(&(sample.build)()).unwrap();
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    let eyes = [Eye::of(&view)];
    let mut draw = |look: &Look| {
        renderer
            .render_look((Some(&model), look), Mat4::IDENTITY, &eyes, WIDTH, HEIGHT)
            .unwrap()
    };
    let opaque = draw(&Look::default());
    let clear = draw(&Look {
        transparent: true,
        ..Look::default()
    });
    let (mut covered, mut background) = (0, 0);
    for (o, c) in opaque
        .pixels
        .chunks_exact(4)
        .zip(clear.pixels.chunks_exact(4))
    {
        let on_model = RgbaImage {
            width: 1,
            height: 1,
            pixels: o.to_vec(),
        }
        .coverage()
            > 0.0;
        if on_model {
            // Opaque wherever the model is, in the very colour it has on the CAD background.
            assert_eq!(c, o, "a pixel of the model");
            covered += 1;
        } else {
            assert_eq!(c, [0, 0, 0, 0], "a pixel of the room");
            background += 1;
        }
    }
    assert!(
        covered > 1000 && background > 1000,
        "{covered} / {background}"
    );

    // As a frame for a codec without alpha: the colour over the coverage, which says the same.
    let framed = parallax_render::with_coverage(&clear);
    assert_eq!((framed.width, framed.height), (WIDTH, 2 * HEIGHT));
    let below = framed.pixels[(WIDTH * HEIGHT * 4) as usize..].chunks_exact(4);
    let opaque_share = below.filter(|p| p[0] == 255).count();
    assert_eq!(opaque_share, covered);
}
