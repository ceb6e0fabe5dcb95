//! Files that are not STEP, or are broken, are refused with a reason, never a crash.

use parallax_render::ImportError;

fn refused(bytes: &[u8]) -> String {
    match parallax_step::read(bytes, &Default::default()) {
        Ok(model) => panic!("imported {} triangles", model.model.triangles()),
        Err(ImportError::Step(reason)) => reason,
        Err(other) => other.to_string(),
    }
}

fn screw() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/screw.step"
    ))
    .unwrap()
}

#[test]
fn bytes_that_are_not_step_are_refused_before_the_kernel_sees_them() {
    let reason = refused(b"solid cube\nendsolid cube\n");
    assert!(reason.contains("ISO-10303-21"), "{reason}");
}

#[test]
fn a_file_without_shapes_says_so() {
    let empty = b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\nFILE_NAME('e','',(''),(''),'','','');\nFILE_SCHEMA(('AUTOMOTIVE_DESIGN'));\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n";
    let reason = refused(empty);
    assert!(
        reason.contains("no shapes") || reason.contains("transfer"),
        "{reason}"
    );
}

#[test]
fn a_truncated_file_is_refused_or_reads_what_is_whole() {
    let screw = screw();
    for keep in [200, screw.len() / 3, screw.len() / 2] {
        match parallax_step::read(&screw[..keep], &Default::default()) {
            // What arrived may hold no whole shape…
            Err(e) => assert!(!e.to_string().is_empty()),
            // …or a part of one: then it is drawable.
            Ok(model) => assert!(model.model.triangles() > 0),
        }
    }
}

#[test]
fn tessellation_settings_out_of_range_are_refused() {
    let screw = screw();
    for (chordal, angular) in [
        (Some(0.0), 20.0),
        (Some(f64::NAN), 20.0),
        (None, 0.0),
        (None, 180.0),
    ] {
        let settings = parallax_step::Tessellation {
            chordal,
            angular_degrees: angular,
        };
        assert!(
            parallax_step::read(&screw, &settings).is_err(),
            "{chordal:?} {angular}"
        );
    }
}

#[test]
fn a_finer_chordal_deflection_gives_more_triangles() {
    let screw = screw();
    let coarse = parallax_step::read(&screw, &Default::default()).unwrap();
    let fine = parallax_step::Tessellation {
        chordal: Some(0.005),
        angular_degrees: 10.0,
    };
    let fine = parallax_step::read(&screw, &fine).unwrap();
    assert_eq!(fine.chordal, 0.005);
    assert!(
        fine.model.triangles() > 2 * coarse.model.triangles(),
        "{} vs {}",
        fine.model.triangles(),
        coarse.model.triangles()
    );
}

#[test]
fn progress_is_told_from_start_to_end() {
    let screw = screw();
    let mut seen = Vec::new();
    parallax_step::read_reporting(&screw, &Default::default(), &mut |done| seen.push(done))
        .unwrap();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "never backwards: {seen:?}"
    );
    assert!(
        seen.first().unwrap() < &0.5 && seen.last().unwrap() > &0.99,
        "{seen:?}"
    );
}
