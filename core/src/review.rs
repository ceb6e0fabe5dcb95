//! A design review's state: what everyone looks at in the model. Per-part overrides (ARR's
//! hierarchical state overrides, by part name), up to eight cut planes and an exploded view.
//! A device sends it on its render connection (`set_review`); its host renders it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most cut planes a review has (ARR's limit).
pub const MAX_CUT_PLANES: usize = 8;

/// Most parts a review overrides.
pub const MAX_OVERRIDES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// By part name (a glTF node, an OBJ object, a sample's component); parts not named look as
    /// modelled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, PartOverride>,
    /// In model space; what lies on a plane's normal side is cut away, the section capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut_planes: Vec<CutPlane>,
    /// 0 assembled, up to 1: each part moved out from the assembly's centre by as far again as
    /// its own centre lies from it.
    #[serde(default)]
    pub explode: f32,
}

/// How one part looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartOverride {
    #[serde(default)]
    pub hidden: bool,
    /// Linear RGB, each 0 to 1, instead of the modelled colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tint: Option<[f32; 3]>,
    #[serde(default)]
    pub see_through: bool,
    /// Pointed out to everyone.
    #[serde(default)]
    pub highlighted: bool,
}

/// A plane through `point` facing `normal`, in model space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CutPlane {
    pub point: [f32; 3],
    pub normal: [f32; 3],
}

impl Review {
    /// Why this review cannot be rendered, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.cut_planes.len() > MAX_CUT_PLANES {
            return Some(format!(
                "at most {MAX_CUT_PLANES} cut planes, not {}",
                self.cut_planes.len()
            ));
        }
        if self.parts.len() > MAX_OVERRIDES {
            return Some(format!("at most {MAX_OVERRIDES} part overrides"));
        }
        for plane in &self.cut_planes {
            let finite = plane
                .point
                .iter()
                .chain(&plane.normal)
                .all(|c| c.is_finite());
            let length: f32 = plane.normal.iter().map(|c| c * c).sum();
            if !finite || length < 1e-12 {
                return Some("a cut plane needs a finite point and a non-zero normal".into());
            }
        }
        if !(0.0..=1.0).contains(&self.explode) {
            return Some(format!("explode is 0 to 1, not {}", self.explode));
        }
        for (name, part) in &self.parts {
            if part
                .tint
                .is_some_and(|t| !t.iter().all(|c| (0.0..=1.0).contains(c)))
            {
                return Some(format!(
                    "the tint of {name} needs red, green and blue 0 to 1"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_reads_as_the_wire_spells_it_and_bad_ones_say_why() {
        let review: Review = serde_json::from_str(
            r#"{"parts":{"Upright":{"hidden":true},"Gussets":{"tint":[1,0,0],"seeThrough":true}},
                "cutPlanes":[{"point":[0,0,0],"normal":[1,0,0]}],"explode":0.5}"#,
        )
        .unwrap();
        assert!(review.parts["Upright"].hidden);
        assert_eq!(review.parts["Gussets"].tint, Some([1.0, 0.0, 0.0]));
        assert!(review.parts["Gussets"].see_through);
        assert_eq!(review.cut_planes.len(), 1);
        assert_eq!(review.problem(), None);
        assert_eq!(
            serde_json::from_str::<Review>("{}").unwrap(),
            Review::default()
        );

        let mut bad = review.clone();
        bad.cut_planes = vec![bad.cut_planes[0]; 9];
        assert!(bad.problem().unwrap().contains("8 cut planes"));
        let mut bad = review.clone();
        bad.cut_planes[0].normal = [0.0; 3];
        assert!(bad.problem().unwrap().contains("non-zero normal"));
        let mut bad = review.clone();
        bad.explode = 2.0;
        assert!(bad.problem().unwrap().contains("explode"));
        let mut bad = review;
        bad.parts.get_mut("Gussets").unwrap().tint = Some([2.0, 0.0, 0.0]);
        assert!(bad.problem().unwrap().contains("tint of Gussets"));
    }
}
