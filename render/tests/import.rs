//! Model import, with every file made here: the formats Parallax reads, and the broken files
//! people will upload, each refused with a message that names the problem.

use parallax_render::{Format, ImportError, import};

const TRIANGLE: [[f32; 3]; 3] = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];

fn no_files(_: &str) -> Option<Vec<u8>> {
    None
}

fn binary_stl(triangles: &[[[f32; 3]; 3]]) -> Vec<u8> {
    let mut out = vec![0u8; 80];
    out.extend((triangles.len() as u32).to_le_bytes());
    for triangle in triangles {
        out.extend([0u8; 12]); // the normal: ignored, recomputed
        for corner in triangle {
            for c in corner {
                out.extend(c.to_le_bytes());
            }
        }
        out.extend([0u8; 2]);
    }
    out
}

fn triangle_bytes(corners: [[f32; 3]; 3]) -> Vec<u8> {
    corners
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect()
}

/// A one-triangle glTF whose node moves it by +10 on X and whose material is red; `buffer` is the
/// JSON of its one buffer.
fn gltf_json(buffer: &str) -> String {
    format!(
        r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],
        "nodes":[{{"mesh":0,"translation":[10,0,0],"name":"Housing"}}],
        "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}},"material":0}}]}}],
        "materials":[{{"pbrMetallicRoughness":{{"baseColorFactor":[1,0,0,1]}}}}],
        "buffers":[{buffer}],
        "bufferViews":[{{"buffer":0,"byteLength":36}}],
        "accessors":[{{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}}]}}"#
    )
}

fn glb(json: &str, bin: &[u8]) -> Vec<u8> {
    let mut json = json.as_bytes().to_vec();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let mut bin = bin.to_vec();
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend(b"glTF");
    out.extend(2u32.to_le_bytes());
    out.extend((total as u32).to_le_bytes());
    out.extend((json.len() as u32).to_le_bytes());
    out.extend(b"JSON");
    out.extend(&json);
    out.extend((bin.len() as u32).to_le_bytes());
    out.extend(b"BIN\0");
    out.extend(&bin);
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn binary_and_ascii_stl_import() {
    let model = import(
        "part.stl",
        &binary_stl(&[
            TRIANGLE,
            [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
        ]),
        &mut no_files,
    )
    .unwrap();
    assert_eq!((model.format, model.triangles()), (Format::Stl, 2));
    assert_eq!(model.bounds().max.z, 1.0);
    assert_eq!(
        model.mesh.part_of(1).as_deref(),
        Some("part"),
        "one part, named after the file"
    );

    let ascii = "solid part\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 2 0 0\nvertex 0 2 0\nendloop\nendfacet\nendsolid part\n";
    let model = import("part.STL", ascii.as_bytes(), &mut no_files).unwrap();
    assert_eq!(model.triangles(), 1);
    assert_eq!(model.bounds().max.x, 2.0);
}

#[test]
fn obj_faces_are_triangulated() {
    let two_objects = "o Lid\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n\
                       o Base\nv 0 0 1\nv 1 0 1\nv 1 1 1\nf 5 6 7\n";
    let model = import("box.obj", two_objects.as_bytes(), &mut no_files).unwrap();
    assert_eq!((model.format, model.triangles()), (Format::Obj, 3));
    let parts: Vec<_> = (0..3).map(|t| model.mesh.part_of(t)).collect();
    assert_eq!(
        parts,
        [Some("Lid"), Some("Lid"), Some("Base")].map(|p| p.map(str::to_string)),
        "objects name their parts"
    );
}

#[test]
fn gltf_keeps_node_transforms_and_base_colours_with_embedded_external_or_glb_buffers() {
    let bin = triangle_bytes(TRIANGLE);
    let embedded = gltf_json(&format!(
        r#"{{"byteLength":36,"uri":"data:application/octet-stream;base64,{}"}}"#,
        base64(&bin)
    ));
    let external = gltf_json(r#"{"byteLength":36,"uri":"triangle.bin"}"#);
    let binary = glb(&gltf_json(r#"{"byteLength":36}"#), &bin);

    let mut beside = |uri: &str| (uri == "triangle.bin").then(|| bin.clone());
    let models = [
        import("embedded.gltf", embedded.as_bytes(), &mut no_files).unwrap(),
        import("external.gltf", external.as_bytes(), &mut beside).unwrap(),
        import("part.glb", &binary, &mut no_files).unwrap(),
    ];
    for model in &models {
        assert_eq!(model.triangles(), 1);
        let bounds = model.bounds();
        assert_eq!(
            (bounds.min.x, bounds.max.x),
            (10.0, 11.0),
            "the node's translation applies"
        );
        assert_eq!(
            model.mesh.vertices[0].color,
            [255, 0, 0, 255],
            "the material's base colour"
        );
        assert_eq!(
            model.mesh.part_of(0).as_deref(),
            Some("Housing"),
            "the node names its part"
        );
    }
    assert_eq!(models[2].format, Format::Glb);
}

#[test]
fn triangles_without_area_are_dropped_and_counted() {
    let sliver = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]];
    let model = import(
        "part.stl",
        &binary_stl(&[TRIANGLE, sliver, sliver]),
        &mut no_files,
    )
    .unwrap();
    assert_eq!((model.triangles(), model.degenerate), (1, 2));
}

fn refused(name: &str, bytes: &[u8]) -> ImportError {
    import(name, bytes, &mut no_files).expect_err("a broken file is refused")
}

#[test]
fn broken_files_are_refused_with_the_reason() {
    let stl = binary_stl(&[TRIANGLE, TRIANGLE]);
    assert!(
        matches!(
            refused("cut.stl", &stl[..stl.len() - 20]),
            ImportError::Stl(_)
        ),
        "truncated STL"
    );

    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(
        matches!(refused("noise.stl", &noise), ImportError::Stl(_)),
        "random bytes as STL"
    );
    assert!(
        matches!(refused("noise.gltf", &noise), ImportError::Gltf(_)),
        "random bytes as glTF"
    );

    let json = gltf_json(r#"{"byteLength":36,"uri":"triangle.bin"}"#);
    assert_eq!(
        refused("json.glb", json.as_bytes()),
        ImportError::NotGlb,
        "JSON named .glb"
    );
    assert_eq!(
        refused("part.gltf", json.as_bytes()),
        ImportError::MissingBuffer {
            index: 0,
            uri: "triangle.bin".into()
        }
    );
    let short = gltf_json(&format!(
        r#"{{"byteLength":36,"uri":"data:application/octet-stream;base64,{}"}}"#,
        base64(&[0; 12])
    ));
    assert!(matches!(
        refused("short.gltf", short.as_bytes()),
        ImportError::ShortBuffer {
            index: 0,
            declared: 36,
            actual: 12
        }
    ));
    let truncated_glb = glb(
        &gltf_json(r#"{"byteLength":36}"#),
        &triangle_bytes(TRIANGLE)[..12],
    );
    assert!(matches!(
        refused("cut.glb", &truncated_glb),
        ImportError::Gltf(_) | ImportError::ShortBuffer { .. }
    ));

    let nan = [[0.0, 0.0, 0.0], [f32::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]];
    assert_eq!(
        refused("nan.stl", &binary_stl(&[TRIANGLE, nan])),
        ImportError::NonFinite { vertex: 4 }
    );
    let infinite = "v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n";
    assert!(matches!(
        refused("inf.obj", infinite.as_bytes()),
        ImportError::NonFinite { .. } | ImportError::Obj(_)
    ));

    let sliver = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]];
    assert_eq!(
        refused("flat.stl", &binary_stl(&[sliver])),
        ImportError::NoTriangles { degenerate: 1 }
    );
    assert_eq!(
        refused("empty.stl", &binary_stl(&[])),
        ImportError::NoTriangles { degenerate: 0 }
    );
    assert!(matches!(
        refused("bad-index.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n"),
        ImportError::Obj(_) | ImportError::IndexOutOfRange { .. }
    ));

    assert!(matches!(
        refused("model.fbx", b"Kaydara FBX Binary"),
        ImportError::UnknownFormat(_)
    ));
    // Each says what is wrong in words a person can act on.
    assert!(ImportError::NotGlb.to_string().contains(".gltf"));
}

#[test]
fn each_format_names_itself() {
    let stl = import("a.stl", &binary_stl(&[TRIANGLE]), &mut no_files).unwrap();
    let obj = import(
        "a.obj",
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
        &mut no_files,
    )
    .unwrap();
    let bin = triangle_bytes(TRIANGLE);
    let gltf = gltf_json(&format!(
        r#"{{"byteLength":36,"uri":"data:application/octet-stream;base64,{}"}}"#,
        base64(&bin)
    ));
    let gltf = import("a.gltf", gltf.as_bytes(), &mut no_files).unwrap();
    let names = [stl.format, obj.format, gltf.format].map(Format::as_str);
    assert_eq!(names, ["STL", "OBJ", "glTF"]);
    assert_eq!(Format::Glb.as_str(), "GLB");
}

#[test]
fn slivers_far_from_the_origin_are_judged_by_their_own_shape() {
    // A long thin triangle 1000 units out is real; three points on one line there are not.
    let far = |p: [f32; 3]| [p[0] + 1000.0, p[1] + 1000.0, p[2] + 1000.0];
    let thin = [
        far([0.0, 0.0, 0.0]),
        far([100.0, 0.0, 0.0]),
        far([0.0, 0.01, 0.0]),
    ];
    let line = [
        far([0.0, 0.0, 0.0]),
        far([1.0, 1.0, 1.0]),
        far([2.0, 2.0, 2.0]),
    ];
    let model = import("far.stl", &binary_stl(&[thin, line]), &mut no_files).unwrap();
    assert_eq!((model.triangles(), model.degenerate), (1, 1));
}

#[test]
fn obj_coordinates_are_read_in_order() {
    let obj = "v 1 2 3\nv 4 5 6\nv 7 9 12\nf 1 2 3\n";
    let model = import("p.obj", obj.as_bytes(), &mut no_files).unwrap();
    let bounds = model.bounds();
    assert_eq!(
        (bounds.min.to_array(), bounds.max.to_array()),
        ([1.0, 2.0, 3.0], [7.0, 9.0, 12.0])
    );
    // Normals and texture coordinates do not change which positions a face uses.
    let obj = "v 1 2 3\nv 4 5 6\nv 7 9 12\nvn 0 0 1\nvt 0 0\nvt 1 0\nf 3/1/1 2/2/1 1/1/1\n";
    let model = import("p.obj", obj.as_bytes(), &mut no_files).unwrap();
    assert_eq!(model.triangles(), 1);
    assert_eq!(model.bounds().max.to_array(), [7.0, 9.0, 12.0]);
}

/// A glTF whose one triangle hangs at the end of a chain of `depth` nodes (the root is 0), plus
/// a primitive of points that is skipped.
fn nested_gltf(depth: usize) -> String {
    let bin = base64(&triangle_bytes(TRIANGLE));
    let nodes: Vec<String> = (0..=depth)
        .map(|i| {
            if i == depth {
                r#"{"mesh":0,"name":"Deep"}"#.to_string()
            } else {
                format!(r#"{{"children":[{}]}}"#, i + 1)
            }
        })
        .collect();
    format!(
        r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],
        "nodes":[{}],
        "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}}}},{{"attributes":{{"POSITION":0}},"mode":0}}]}}],
        "buffers":[{{"byteLength":36,"uri":"data:application/octet-stream;base64,{bin}"}}],
        "bufferViews":[{{"buffer":0,"byteLength":36}}],
        "accessors":[{{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}}]}}"#,
        nodes.join(",")
    )
}

#[test]
fn node_hierarchies_are_followed_64_deep_and_refused_deeper() {
    let model = import("deep.gltf", nested_gltf(64).as_bytes(), &mut no_files).unwrap();
    assert_eq!((model.triangles(), model.skipped_primitives), (1, 1));
    let path = model.mesh.part_of(0).unwrap();
    assert_eq!(path.split('/').count(), 65, "{path}");
    assert!(path.starts_with("node 0/node 1/") && path.ends_with("/node 63/Deep"));
    let deeper = refused("deeper.gltf", nested_gltf(65).as_bytes());
    assert!(deeper.to_string().contains("deeper than 64"), "{deeper}");
}

#[test]
fn a_mesh_written_as_binary_stl_imports_as_the_same_part() {
    let gear = parallax_render::samples::gear();
    let model = import("gear.stl", &gear.to_binary_stl(), &mut no_files).unwrap();
    assert_eq!(model.triangles(), gear.triangles());
    assert_eq!(model.degenerate, 0);
    let (written, read) = (gear.bounds().unwrap(), model.bounds());
    assert_eq!((read.min, read.max), (written.min, written.max));
}

#[test]
fn a_triangle_is_judged_by_its_own_edges_whichever_corner_comes_first() {
    // Real triangles whose corner sums line up with an edge (what a sign slip would see as flat).
    let kept = [
        [[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [1.0, 1.0, 0.0]],
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]],
    ];
    // A sliver 2000 long and 0.0001 high, far from the origin, in each corner order: flat.
    let (a, b, c) = (
        [1500.0, 500.0001, 500.0],
        [500.0, 500.0, 500.0],
        [2500.0, 500.0, 500.0],
    );
    let slivers = [[a, b, c], [b, c, a], [c, a, b]];
    let all: Vec<[[f32; 3]; 3]> = kept.iter().chain(&slivers).copied().collect();
    let model = import("mixed.stl", &binary_stl(&all), &mut no_files).unwrap();
    assert_eq!((model.triangles(), model.degenerate), (2, 3));
}

#[test]
fn an_obj_face_naming_a_missing_vertex_is_refused() {
    let obj = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n";
    assert!(import("p.obj", obj.as_bytes(), &mut no_files).is_err());
}

#[test]
fn gltf_groups_become_the_part_tree_with_unambiguous_paths() {
    // Gearbox { Housing (mesh), Shafts { Input (mesh), Input (mesh), "In/Out" (mesh) }, Camera }
    let bin = base64(&triangle_bytes(TRIANGLE));
    let gltf = format!(
        r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],
        "nodes":[
            {{"name":"Gearbox","children":[1,2,6]}},
            {{"name":"Housing","mesh":0}},
            {{"name":"Shafts","children":[3,4,5]}},
            {{"name":"Input","mesh":0,"translation":[0,0,1]}},
            {{"name":"Input","mesh":0,"translation":[0,0,2]}},
            {{"name":"In/Out","mesh":0,"translation":[0,0,3]}},
            {{"name":"Camera"}}],
        "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}}}}]}}],
        "buffers":[{{"byteLength":36,"uri":"data:application/octet-stream;base64,{bin}"}}],
        "bufferViews":[{{"buffer":0,"byteLength":36}}],
        "accessors":[{{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}}]}}"#
    );
    let model = import("gearbox.gltf", gltf.as_bytes(), &mut no_files).unwrap();
    // One mesh used four times: held once, for the Housing, and placed three times.
    let mesh = &model.mesh;
    assert_eq!((mesh.triangles(), mesh.drawn_triangles()), (1, 4));
    let paths: Vec<String> = mesh
        .draw_ranges()
        .iter()
        .filter_map(|(part, _)| part.map(|i| mesh.path_of(i)))
        .chain(mesh.instances.iter().map(|i| mesh.path_of(i.part as usize)))
        .collect();
    assert_eq!(
        paths,
        [
            "Gearbox/Housing",
            "Gearbox/Shafts/Input",
            "Gearbox/Shafts/Input (2)",
            "Gearbox/Shafts/In\u{2215}Out",
        ]
    );
    let names: Vec<&str> = model.mesh.parts.iter().map(|p| p.name.as_str()).collect();
    assert!(
        !names.contains(&"Camera"),
        "a node with nothing in it is left out: {names:?}"
    );
    // The tree survives the transfer form.
    let again = parallax_render::Mesh::from_bytes(&model.mesh.to_bytes()).unwrap();
    assert_eq!(again.part_of(3), model.mesh.part_of(3));
}

/// Corners welded as they are read make the mesh welding them all at the end made: the same
/// vertices in the same order, the same triangles.
#[test]
fn welding_as_corners_come_is_welding_at_the_end() {
    let gear = parallax_render::samples::gear();
    let stl = gear.to_binary_stl();
    let imported = import("gear.stl", &stl, &mut no_files).unwrap().mesh;
    let mut at_the_end = parallax_render::Mesh::default();
    for t in gear.indices.chunks_exact(3) {
        let [a, b, c] = [0, 1, 2].map(|i| glam::Vec3::from(gear.vertices[t[i] as usize].position));
        at_the_end.push_triangle(a, b, c, parallax_render::DEFAULT_COLOR);
    }
    let at_the_end = at_the_end.welded();
    assert!(imported.vertices.len() * 3 < imported.indices.len());
    assert_eq!(
        (imported.vertices, imported.indices),
        (at_the_end.vertices, at_the_end.indices)
    );
}

/// A glTF mesh used by several nodes is held once: the first node's part holds its triangles,
/// the others are instances of it, placed where their nodes put it; one that would mirror it is
/// held again. The polygon budget counts every copy; the transfer form keeps them as instances.
#[test]
fn a_mesh_used_by_several_nodes_is_held_once_and_placed_for_each() {
    let json = r#"{"asset":{"version":"2.0"},"scene":0,"scenes":[{"nodes":[0,1,2,3]}],
        "nodes":[{"mesh":0,"name":"Bolt A"},
                 {"mesh":0,"translation":[10,0,0],"name":"Bolt B"},
                 {"mesh":0,"translation":[0,10,0],"rotation":[0,0,0.7071068,0.7071068],"name":"Bolt C"},
                 {"mesh":0,"scale":[-1,1,1],"name":"Mirrored"}],
        "meshes":[{"primitives":[{"attributes":{"POSITION":0}}]}],
        "buffers":[{"byteLength":36}],
        "bufferViews":[{"buffer":0,"byteLength":36}],
        "accessors":[{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}]}"#;
    let bin: Vec<u8> = TRIANGLE
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let mesh = import("bolts.glb", &glb(json, &bin), &mut no_files)
        .unwrap()
        .mesh;
    // Held: Bolt A's triangle and the mirrored one's. Drawn: four.
    assert_eq!((mesh.triangles(), mesh.drawn_triangles()), (2, 4));
    let names: Vec<String> = (0..mesh.parts.len()).map(|i| mesh.path_of(i)).collect();
    assert_eq!(names, ["Bolt A", "Bolt B", "Bolt C", "Mirrored"]);
    let placed: Vec<(u32, u32)> = mesh.instances.iter().map(|i| (i.part, i.of)).collect();
    assert_eq!(placed, [(1, 0), (2, 0)]);
    let moved = mesh.instances[1]
        .placement
        .transform_point3(glam::Vec3::new(1.0, 0.0, 0.0));
    assert!(
        (moved - glam::Vec3::new(0.0, 11.0, 0.0)).length() < 1e-5,
        "{moved}"
    );
    // The copies count in the bounds and the parts' extents.
    let bounds = mesh.bounds().unwrap();
    assert!((bounds.max.x - 11.0).abs() < 1e-5 && (bounds.max.y - 11.0).abs() < 1e-5);
    assert_eq!(mesh.part_extents()[2].0, 1);
    let back = parallax_render::Mesh::from_bytes(&mesh.to_bytes()).unwrap();
    assert_eq!(back, mesh);
    // Refused as damage: an instance of a part that has no triangles, one that mirrors, one
    // that is not affine, two copies as one part.
    let damaged: [fn(&mut parallax_render::Mesh); 4] = [
        |m| m.instances[0].of = 1,
        |m| m.instances[0].placement = glam::Mat4::from_scale(glam::Vec3::new(-1.0, 1.0, 1.0)),
        |m| {
            m.instances[0].placement =
                glam::Mat4::from_diagonal(glam::Vec4::new(1.0, 1.0, 1.0, -1.0))
        },
        |m| m.instances[1].part = m.instances[0].part,
    ];
    for damage in damaged {
        let mut bad = mesh.clone();
        damage(&mut bad);
        assert!(parallax_render::Mesh::from_bytes(&bad.to_bytes()).is_err());
    }
}

/// Welding that leaves a copied part without triangles takes its copies with it: what remains
/// still loads.
#[test]
fn copies_of_a_part_that_welding_empties_go_with_it() {
    use glam::Vec3;
    let mut mesh = parallax_render::Mesh::default();
    mesh.begin_part("Solid");
    mesh.push_box(Vec3::ZERO, Vec3::ONE, [1.0; 3]);
    let sliver = mesh.begin_part("Sliver");
    // Two corners that weld into one: no triangle left.
    mesh.push_triangle(Vec3::X, Vec3::X, Vec3::Y, [1.0; 3]);
    let copy = mesh.begin_part("Sliver copy");
    mesh.instances.push(parallax_render::Instance {
        part: copy,
        of: sliver,
        placement: glam::Mat4::from_translation(Vec3::Z),
    });
    let solid = mesh.begin_part("Solid copy");
    mesh.instances.push(parallax_render::Instance {
        part: solid,
        of: 0,
        placement: glam::Mat4::from_translation(Vec3::Z * 3.0),
    });
    let mesh = mesh.welded();
    let names: Vec<&str> = mesh.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Solid", "Solid copy"]);
    assert_eq!(mesh.instances.len(), 1);
    assert_eq!((mesh.instances[0].part, mesh.instances[0].of), (1, 0));
    assert_eq!(mesh.drawn_triangles(), 24);
    assert_eq!(
        parallax_render::Mesh::from_bytes(&mesh.to_bytes()),
        Ok(mesh)
    );
}
