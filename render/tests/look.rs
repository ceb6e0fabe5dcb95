//! A design review's look on the real device (lavapipe where there is no GPU): parts hidden,
//! tinted, see-through; cut planes that remove what lies on their positive side and cap the
//! section; an exploded view. Judged on the pixels, as a person in the review sees them.

use glam::{Mat4, Vec3};
use parallax_render::{Eye, GpuModel, Look, PartLook, Renderer, RgbaImage, View, samples};

const WIDTH: u32 = 480;
const HEIGHT: u32 = 360;

/// The bracket (base plate, upright, gussets, bolt bosses), seen as a CAD viewer frames it.
fn bracket() -> (Renderer, GpuModel) {
    let Ok(renderer) = Renderer::new() else {
        panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
    };
    let model = renderer.upload(&samples::bracket()).unwrap();
    (renderer, model)
}

fn draw(renderer: &mut Renderer, model: &GpuModel, look: &Look) -> RgbaImage {
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    renderer
        .render_look(
            (Some(model), look),
            Mat4::IDENTITY,
            &[Eye::of(&view)],
            WIDTH,
            HEIGHT,
        )
        .unwrap()
}

/// With `PARALLAX_LOOK_OUT=DIR`, writes `image` there as `name.png` to be checked by eye.
fn keep(name: &str, image: &RgbaImage) {
    if let Some(dir) = std::env::var_os("PARALLAX_LOOK_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let png = parallax_render::encode_png(image).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// The index of part `name`, and a look with `part` applied to it alone.
fn only(model: &GpuModel, name: &str, part: PartLook) -> Look {
    let names: Vec<_> = model.part_names().collect();
    let index = names
        .iter()
        .position(|n| *n == Some(name))
        .unwrap_or_else(|| panic!("{name} is not among {names:?}"));
    let mut parts = vec![PartLook::default(); names.len()];
    parts[index] = part;
    Look {
        parts,
        ..Look::default()
    }
}

const AS_MODELLED: PartLook = PartLook {
    hidden: false,
    tint: None,
    see_through: false,
    highlighted: false,
};
const HIDDEN: PartLook = PartLook {
    hidden: true,
    ..AS_MODELLED
};
const SEE_THROUGH: PartLook = PartLook {
    see_through: true,
    ..AS_MODELLED
};
const HIGHLIGHTED: PartLook = PartLook {
    highlighted: true,
    ..AS_MODELLED
};

/// Only part `index` of the bracket's four shown.
fn alone(index: usize) -> Look {
    let mut parts = vec![HIDDEN; 4];
    parts[index] = PartLook::default();
    Look {
        parts,
        ..Look::default()
    }
}

/// Pixels (x, y) where the two frames differ at all.
fn differing(a: &RgbaImage, b: &RgbaImage) -> Vec<(u32, u32)> {
    (0..a.height)
        .flat_map(|y| (0..a.width).map(move |x| (x, y)))
        .filter(|&(x, y)| a.pixel(x, y) != b.pixel(x, y))
        .collect()
}

#[test]
fn the_bracket_names_its_parts() {
    let (_renderer, model) = bracket();
    let names: Vec<_> = model.part_names().collect();
    assert_eq!(
        names,
        [
            Some("Base plate"),
            Some("Upright"),
            Some("Gussets"),
            Some("Bolt bosses")
        ]
    );
}

#[test]
fn a_hidden_part_disappears_and_a_tint_changes_only_that_parts_pixels() {
    let (mut renderer, model) = bracket();
    let plain = draw(&mut renderer, &model, &Look::default());
    let without_upright = draw(&mut renderer, &model, &only(&model, "Upright", HIDDEN));
    assert!(
        without_upright.coverage() < plain.coverage() - 0.02,
        "hiding the upright uncovers part of the view: {:.3} -> {:.3}",
        plain.coverage(),
        without_upright.coverage()
    );
    // Where the upright is in the frame: its silhouette, drawn alone.
    let alone = draw(&mut renderer, &model, &alone(1));
    let clear = parallax_render::renderer::background();
    let upright: std::collections::HashSet<_> = (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
        .filter(|&(x, y)| alone.pixel(x, y)[..3] != clear)
        .collect();
    assert!(upright.len() > 1000, "{} pixels", upright.len());

    let red = PartLook {
        tint: Some([0.8, 0.02, 0.02]),
        ..PartLook::default()
    };
    let tinted = draw(&mut renderer, &model, &only(&model, "Upright", red));
    keep("tinted", &tinted);
    let changed = differing(&plain, &tinted);
    assert!(changed.len() > 1000, "the tint shows: {}", changed.len());
    let outside: Vec<_> = changed.iter().filter(|p| !upright.contains(p)).collect();
    assert!(
        outside.is_empty(),
        "the tint changed {} pixels outside the upright, e.g. {:?}",
        outside.len(),
        outside.first()
    );
    // And they are red now.
    let reddish = changed
        .iter()
        .filter(|&&(x, y)| {
            let [r, g, b, _] = tinted.pixel(x, y);
            r > g.saturating_add(40) && r > b.saturating_add(40)
        })
        .count();
    assert!(
        reddish * 10 > changed.len() * 9,
        "{reddish} of {}",
        changed.len()
    );

    // Every part hidden: nothing but background.
    let all_hidden = Look {
        parts: vec![HIDDEN; 4],
        ..Look::default()
    };
    assert_eq!(draw(&mut renderer, &model, &all_hidden).coverage(), 0.0);
    // And back as modelled: the same frame as before any of this.
    assert_eq!(draw(&mut renderer, &model, &Look::default()), plain);
}

#[test]
fn a_see_through_part_shows_what_is_behind_it() {
    let (mut renderer, model) = bracket();
    let plain = draw(&mut renderer, &model, &Look::default());
    let hidden = draw(&mut renderer, &model, &only(&model, "Upright", HIDDEN));
    let glass = draw(&mut renderer, &model, &only(&model, "Upright", SEE_THROUGH));
    // Over the upright's pixels, the see-through frame lies between the two: neither the
    // opaque upright nor nothing.
    let upright = differing(&plain, &hidden);
    let between = upright
        .iter()
        .filter(|&&(x, y)| {
            let (p, h, g) = (plain.pixel(x, y), hidden.pixel(x, y), glass.pixel(x, y));
            g != p && g != h
        })
        .count();
    assert!(
        between * 10 > upright.len() * 9,
        "{between} of {}",
        upright.len()
    );
}

#[test]
fn a_cut_plane_removes_what_lies_on_its_positive_side_and_caps_the_section() {
    let (mut renderer, model) = bracket();
    let plain = draw(&mut renderer, &model, &Look::default());
    let cut = |point: Vec3, normal: Vec3| Look {
        cut_planes: vec![(point, normal)],
        ..Look::default()
    };
    let (min, max, center) = (model.bounds.min, model.bounds.max, model.bounds.center());
    // A plane past the model on its positive side's far end removes nothing; one at its near end
    // facing in removes everything.
    let nothing_cut = draw(&mut renderer, &model, &cut(max + 1.0, Vec3::X));
    assert!(nothing_cut.share_differing(&plain, 24) < 0.001);
    assert_eq!(
        draw(&mut renderer, &model, &cut(min - 1.0, Vec3::X)).coverage(),
        0.0
    );

    // Through the middle, facing the camera (which looks from +X, +Y, +Z): the near half goes
    // and the camera looks into the section, drawn solid in the cap colour.
    let halved = draw(&mut renderer, &model, &cut(center, Vec3::X));
    keep("cut", &halved);
    assert!(
        halved.share_differing(&plain, 24) > 0.05,
        "the cut changes the view"
    );
    // The cap colour, linear (0.02, 0.60, 0.45), is sRGB (39, 203, 179).
    let is_cap = |[r, g, b, _]: [u8; 4]| r < 60 && g > 180 && (150..210).contains(&b);
    let caps = |image: &RgbaImage| {
        (0..image.height)
            .flat_map(|y| (0..image.width).map(move |x| (x, y)))
            .filter(|&(x, y)| is_cap(image.pixel(x, y)))
            .count()
    };
    assert_eq!(caps(&plain), 0, "no cap colour without a cut");
    let capped = caps(&halved);
    assert!(capped > 500, "the section is capped: {capped} cap pixels");
    // The other way round keeps the near half, whose outside faces the camera: little section.
    let other_half = draw(&mut renderer, &model, &cut(center, Vec3::NEG_X));
    assert!(caps(&other_half) < capped / 4);

    // Nine planes are more than ARR's eight.
    let too_many = Look {
        cut_planes: vec![(center, Vec3::X); 9],
        ..Look::default()
    };
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    assert!(
        renderer
            .render_look(
                (Some(&model), &too_many),
                Mat4::IDENTITY,
                &[Eye::of(&view)],
                WIDTH,
                HEIGHT
            )
            .is_err()
    );
}

#[test]
fn the_exploded_view_moves_parts_apart() {
    let (mut renderer, model) = bracket();
    // Each part drawn alone, assembled and exploded: its pixels' centre moves.
    let names: Vec<String> = model.part_names().map(|n| n.unwrap().to_string()).collect();
    let centre_of = |image: &RgbaImage| {
        let clear = parallax_render::renderer::background();
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for y in 0..image.height {
            for x in 0..image.width {
                let [r, g, b, _] = image.pixel(x, y);
                if [r, g, b] != clear {
                    sx += f64::from(x);
                    sy += f64::from(y);
                    n += 1.0;
                }
            }
        }
        (sx / n, sy / n)
    };
    let mut spread = [0.0; 2];
    for (step, explode) in [0.0, 1.0].into_iter().enumerate() {
        let centres: Vec<(f64, f64)> = names
            .iter()
            .map(|name| {
                let mut look = only(&model, name, PartLook::default());
                for (i, part) in look.parts.iter_mut().enumerate() {
                    part.hidden = model.part_names().nth(i).flatten() != Some(name.as_str());
                }
                look.explode = explode;
                centre_of(&draw(&mut renderer, &model, &look))
            })
            .collect();
        // How far apart the parts are on screen: the mean distance between their centres.
        let mut total = 0.0;
        for (i, a) in centres.iter().enumerate() {
            for b in &centres[i + 1..] {
                total += ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
            }
        }
        spread[step] = total;
    }
    assert!(
        spread[1] > spread[0] * 1.3,
        "exploded {:.0} px vs assembled {:.0} px",
        spread[1],
        spread[0]
    );
}

#[test]
fn a_highlighted_part_is_outlined() {
    let (mut renderer, model) = bracket();
    let plain = draw(&mut renderer, &model, &Look::default());
    let outlined = draw(&mut renderer, &model, &only(&model, "Upright", HIGHLIGHTED));
    keep("highlighted", &outlined);
    // The highlight colour, linear (1.0, 0.62, 0.0), is sRGB (255, 206, 0).
    let changed = differing(&plain, &outlined);
    let rim = changed
        .iter()
        .filter(|&&(x, y)| {
            let [r, g, b, _] = outlined.pixel(x, y);
            r > 240 && (180..230).contains(&g) && b < 40
        })
        .count();
    assert!(rim > 300, "an outline shows: {rim} pixels");
    assert_eq!(rim, changed.len(), "only the outline changes the frame");
    // A rim, not a fill: far fewer pixels than the upright covers.
    let upright = draw(&mut renderer, &model, &alone(1)).coverage() * f64::from(WIDTH * HEIGHT);
    assert!((rim as f64) < upright * 0.5, "{rim} vs {upright}");
}

/// Where `point` (model space) lands in a frame of `model` as [`draw`] frames it.
fn on_screen(model: &GpuModel, point: Vec3) -> (u32, u32) {
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    let ndc = view.view_projection().project_point3(point);
    (
        ((ndc.x + 1.0) / 2.0 * WIDTH as f32) as u32,
        ((1.0 - ndc.y) / 2.0 * HEIGHT as f32) as u32,
    )
}

/// The pointer's magenta, however it is lit.
fn pointer_coloured(pixel: [u8; 4]) -> bool {
    let [r, g, b, _] = pixel.map(i32::from);
    r > 2 * g && b > 2 * g && r > 60
}

#[test]
fn a_pointer_shows_over_the_model_even_behind_a_part_with_its_ray() {
    let (mut renderer, model) = bracket();
    // The back of the upright (x 0..6), seen from the front-right where the framing camera is:
    // behind the upright itself.
    let target = Vec3::new(0.0, 40.0, 20.0);
    let origin = Vec3::new(60.0, 80.0, 60.0);
    let plain = draw(&mut renderer, &model, &Look::default());
    let (x, y) = on_screen(&model, target);
    assert!(
        !pointer_coloured(plain.pixel(x, y)),
        "{:?}",
        plain.pixel(x, y)
    );
    let pointed = Look {
        pointer: Some((target, None)),
        ..Look::default()
    };
    let frame = draw(&mut renderer, &model, &pointed);
    keep("pointer", &frame);
    assert!(
        pointer_coloured(frame.pixel(x, y)),
        "{:?}",
        frame.pixel(x, y)
    );
    let marked = differing(&plain, &frame).len();
    assert!(
        (50..5000).contains(&marked),
        "a small ball: {marked} pixels"
    );

    let ray = Look {
        pointer: Some((target, Some(origin))),
        ..Look::default()
    };
    let frame = draw(&mut renderer, &model, &ray);
    keep("pointer-ray", &frame);
    let (mx, my) = on_screen(&model, (target + origin) / 2.0);
    let near_middle = (my.saturating_sub(2)..my + 3)
        .flat_map(|y| (mx.saturating_sub(2)..mx + 3).map(move |x| (x, y)))
        .any(|(x, y)| pointer_coloured(frame.pixel(x, y)));
    assert!(near_middle, "the rod passes half way along");
    assert!(
        differing(&plain, &frame).len() > marked,
        "the rod adds pixels"
    );
}

/// Pixels in the brass of the gearbox's gears.
fn brass(image: &RgbaImage) -> usize {
    (0..image.height)
        .flat_map(|y| (0..image.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let [r, g, b, _] = image.pixel(x, y).map(i32::from);
            r > b + 50 && g > b + 30
        })
        .count()
}

#[test]
fn a_group_override_reaches_every_part_in_it() {
    let Ok(mut renderer) = Renderer::new() else {
        panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
    };
    let model = renderer.upload(&samples::gearbox()).unwrap();
    let look = |review: &str| Look::of_review(&serde_json::from_str(review).unwrap(), &model);
    let closed = draw(&mut renderer, &model, &Look::default());
    assert_eq!(brass(&closed), 0, "the cover hides the gears");
    let open = draw(
        &mut renderer,
        &model,
        &look(r#"{"parts":{"Housing/Cover":{"hidden":true}}}"#),
    );
    keep("gearbox-open", &open);
    let both = brass(&open);
    assert!(both > 2000, "both gears show: {both}");
    let one = brass(&draw(
        &mut renderer,
        &model,
        &look(r#"{"parts":{"Housing/Cover":{"hidden":true},"Output shaft":{"hidden":true}}}"#),
    ));
    assert!(
        one * 3 < both && one > 100,
        "hiding the output shaft's group hides its gear, not the pinion: {both} -> {one}"
    );
    // Hiding the whole housing shows the same gears (the base is below them).
    let unhoused = brass(&draw(
        &mut renderer,
        &model,
        &look(r#"{"parts":{"Housing":{"hidden":true}}}"#),
    ));
    assert!(unhoused >= both, "{unhoused} < {both}");
    // A part's own setting beats its group's: the cover shown again within a hidden housing.
    let covered = brass(&draw(
        &mut renderer,
        &model,
        &look(r#"{"parts":{"Housing":{"hidden":true},"Housing/Cover":{"hidden":false}}}"#),
    ));
    assert_eq!(covered, 0);
}
