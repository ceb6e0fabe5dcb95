//! STEP files made from a real one, for tests and benchmarks: the real screw of
//! `tests/data/screw.step` (Debian's occt-misc) grown into assemblies no exporter would write but
//! any file may be.

/// `screw` (the text of `tests/data/screw.step`, whose entity numbers this relies on) with
/// `count` more products, each an assembly of what came before (`nested`), or
/// each an instance of the screw side by side in one assembly (not `nested`). Both are valid
/// STEP: a deep one overflows OpenCascade's stack, which recurses once per level; a wide one is
/// a small file that becomes millions of triangles.
pub fn screw_assembly(screw: &str, count: usize, nested: bool) -> Vec<u8> {
    // The new entities go at the end of the data section (before its `ENDSEC;`).
    let end = screw.rfind("ENDSEC;").unwrap_or(screw.len());
    let mut step = StepText {
        text: screw[..end].to_string(),
        next: 2_000_000,
    };
    let origin = step.entity("CARTESIAN_POINT('',(0.,0.,0.))".into());
    let z = step.entity("DIRECTION('',(0.,0.,1.))".into());
    let x = step.entity("DIRECTION('',(1.,0.,0.))".into());
    let axes = step.entity(format!("AXIS2_PLACEMENT_3D('',#{origin},#{z},#{x})"));
    // #8 is the screw's product definition and #11 its shape.
    let (mut inner, mut inner_shape) = (8, 11);
    let rack = (!nested).then(|| step.product("rack", axes));
    for k in 0..count {
        let (outer, outer_shape) =
            rack.unwrap_or_else(|| step.product(&format!("level {k}"), axes));
        let place = if nested {
            axes
        } else {
            let at = format!("({}.,{}.,0.)", (k % 100) * 30, (k / 100) * 30);
            let point = step.entity(format!("CARTESIAN_POINT('',{at})"));
            step.entity(format!("AXIS2_PLACEMENT_3D('',#{point},#{z},#{x})"))
        };
        let usage = step.entity(format!(
            "NEXT_ASSEMBLY_USAGE_OCCURRENCE('{k}','','',#{outer},#{inner},$)"
        ));
        let shape = step.entity(format!("PRODUCT_DEFINITION_SHAPE('','',#{usage})"));
        let moved = step.entity(format!(
            "ITEM_DEFINED_TRANSFORMATION('','',#{axes},#{place})"
        ));
        let relation = step.entity(format!(
            "( REPRESENTATION_RELATIONSHIP('','',#{inner_shape},#{outer_shape}) \
             REPRESENTATION_RELATIONSHIP_WITH_TRANSFORMATION(#{moved}) \
             SHAPE_REPRESENTATION_RELATIONSHIP() )"
        ));
        step.entity(format!(
            "CONTEXT_DEPENDENT_SHAPE_REPRESENTATION(#{relation},#{shape})"
        ));
        if nested {
            (inner, inner_shape) = (outer, outer_shape);
        }
    }
    step.text.push_str(&screw[end..]);
    step.text.into_bytes()
}

/// STEP entities appended to a file's data section.
struct StepText {
    text: String,
    next: u32,
}

impl StepText {
    fn entity(&mut self, body: String) -> u32 {
        self.next += 1;
        self.text.push_str(&format!("#{} = {body};\n", self.next));
        self.next
    }

    /// A product with an empty shape of its own, in the screw's contexts (#3, #10, #1236);
    /// returns its definition and its shape.
    fn product(&mut self, name: &str, axes: u32) -> (u32, u32) {
        let p = self.entity(format!("PRODUCT('{name}','{name}','',(#3))"));
        let f = self.entity(format!("PRODUCT_DEFINITION_FORMATION('','',#{p})"));
        let d = self.entity(format!("PRODUCT_DEFINITION('design','',#{f},#10)"));
        let s = self.entity(format!("PRODUCT_DEFINITION_SHAPE('','',#{d})"));
        let r = self.entity(format!("SHAPE_REPRESENTATION('',(#{axes}),#1236)"));
        self.entity(format!("SHAPE_DEFINITION_REPRESENTATION(#{s},#{r})"));
        (d, r)
    }
}
