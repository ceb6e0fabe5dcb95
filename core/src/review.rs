//! A design review's state: what everyone looks at in the model. Per-part overrides (ARR's
//! hierarchical state overrides, by part path), up to eight cut planes, an exploded view and a
//! pointer. A device sends it on its render connection (`set_review`); its host renders it.
//!
//! Parts form a tree (a glTF node's children, an assembly's components) and are named by their
//! path from the root, names joined by [`PATH_SEPARATOR`]: `Gearbox/Housing/Bolt 2`. An override
//! on a group applies to every part in it, field by field, unless a part within sets that field
//! itself, as ARR's `HierarchicalStateOverrideComponent` did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most cut planes a review has (ARR's limit).
pub const MAX_CUT_PLANES: usize = 8;

/// Most parts a review overrides.
pub const MAX_OVERRIDES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// By part path (a glTF node, an OBJ object, a sample's component, or a group of them);
    /// parts neither named nor within a named group look as modelled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, PartOverride>,
    /// In model space; what lies on a plane's normal side is cut away, the section capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 8))]
    pub cut_planes: Vec<CutPlane>,
    /// 0 assembled, up to 1: each part moved out from the assembly's centre by as far again as
    /// its own centre lies from it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub explode: f32,
    /// What a member is pointing at, for everyone to see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<Pointer>,
}

/// What one part or group sets; a field it leaves unset (`None`) it takes from the group it is
/// in, and as modelled at the root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// Linear RGB, each 0 to 1, instead of the modelled colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub tint: Option<[f32; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub see_through: Option<bool>,
    /// Pointed out to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlighted: Option<bool>,
}

/// How a part looks once its own overrides and its groups' are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartLook {
    pub hidden: bool,
    /// Linear RGB that replaces the modelled colour.
    pub tint: Option<[f32; 3]>,
    /// Drawn blended over what is behind it.
    pub see_through: bool,
    /// Outlined, for everyone to see what is being talked about.
    pub highlighted: bool,
}

/// What separates the names in a part's path.
pub const PATH_SEPARATOR: char = '/';

/// The path `path` lies in: `Gearbox/Housing` for `Gearbox/Housing/Bolt`; `None` at the root.
pub fn parent_path(path: &str) -> Option<&str> {
    path.rfind(PATH_SEPARATOR).map(|at| &path[..at])
}

/// A marker every headset draws where a member points: at `target`, in model space, with a ray
/// to it from `origin` when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pointer {
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub target: [f32; 3],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub origin: Option<[f32; 3]>,
    /// The part pointed at, if the pointer names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub part: Option<String>,
    /// The device that points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A plane through `point` facing `normal`, in model space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CutPlane {
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub point: [f32; 3],
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub normal: [f32; 3],
}

impl Review {
    /// How the part at `path` looks: each field from its own override, else from the nearest
    /// group around it that sets it.
    pub fn look_of(&self, path: &str) -> PartLook {
        let (mut hidden, mut tint, mut see_through, mut highlighted) = (None, None, None, None);
        let mut at = Some(path);
        while let Some(path) = at {
            if let Some(part) = self.parts.get(path) {
                hidden = hidden.or(part.hidden);
                tint = tint.or(part.tint);
                see_through = see_through.or(part.see_through);
                highlighted = highlighted.or(part.highlighted);
            }
            at = parent_path(path);
        }
        PartLook {
            hidden: hidden.unwrap_or(false),
            tint,
            see_through: see_through.unwrap_or(false),
            highlighted: highlighted.unwrap_or(false),
        }
    }

    /// Shows (`false`) or hides the part or group at `path`, and everything in it: parts within
    /// lose their own setting.
    pub fn set_hidden(&mut self, path: &str, hidden: bool) {
        self.set_flag(path, hidden, |o| &mut o.hidden, |l| l.hidden);
    }

    /// Outlines the part or group at `path` for everyone, or stops.
    pub fn set_highlighted(&mut self, path: &str, highlighted: bool) {
        self.set_flag(path, highlighted, |o| &mut o.highlighted, |l| l.highlighted);
    }

    /// Shows only the part or group at `path`: every root of the part tree (`roots`) is hidden,
    /// the part shown, so what lies between them hides with the roots.
    pub fn isolate<'a>(&mut self, path: &str, roots: impl IntoIterator<Item = &'a str>) {
        for part in self.parts.values_mut() {
            part.hidden = None;
        }
        for root in roots {
            if root != path {
                self.parts.entry(root.to_string()).or_default().hidden = Some(true);
            }
        }
        if parent_path(path).is_some() {
            self.parts.entry(path.to_string()).or_default().hidden = Some(false);
        }
        self.parts
            .retain(|_, part| *part != PartOverride::default());
    }

    /// Sets one flag of `path` to `value` as the least override that makes it so, clearing the
    /// same flag on every part within.
    fn set_flag(
        &mut self,
        path: &str,
        value: bool,
        field: fn(&mut PartOverride) -> &mut Option<bool>,
        read: fn(&PartLook) -> bool,
    ) {
        let within = format!("{path}{PATH_SEPARATOR}");
        for (part, over) in &mut self.parts {
            if part.starts_with(&within) {
                *field(over) = None;
            }
        }
        let inherited = parent_path(path).is_some_and(|group| read(&self.look_of(group)));
        *field(self.parts.entry(path.to_string()).or_default()) =
            (inherited != value).then_some(value);
        self.parts
            .retain(|_, part| *part != PartOverride::default());
    }

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
            if !finite || !length.is_finite() || length < 1e-12 {
                return Some("a cut plane needs a finite point and a non-zero normal".into());
            }
        }
        if let Some(pointer) = &self.pointer {
            let finite = pointer
                .target
                .iter()
                .chain(pointer.origin.iter().flatten())
                .all(|c| c.is_finite());
            if !finite || pointer.origin == Some(pointer.target) {
                return Some("a pointer needs a finite target, and an origin apart from it".into());
            }
            // As a pick's: any member may point, and every headset's render connection gets it.
            if pointer
                .part
                .as_ref()
                .is_some_and(|p| p.chars().count() > 1024)
            {
                return Some("a pointer's part name is at most 1024 characters".into());
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
        assert_eq!(review.parts["Upright"].hidden, Some(true));
        assert_eq!(review.parts["Gussets"].tint, Some([1.0, 0.0, 0.0]));
        assert_eq!(review.parts["Gussets"].see_through, Some(true));
        assert_eq!(review.parts["Gussets"].hidden, None);
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
        // Finite, but too long to square.
        bad.cut_planes[0].normal = [1e20, 0.0, 0.0];
        assert!(bad.problem().unwrap().contains("non-zero normal"));
        let mut bad = review.clone();
        bad.explode = 2.0;
        assert!(bad.problem().unwrap().contains("explode"));
        let mut bad = review.clone();
        bad.parts.get_mut("Gussets").unwrap().tint = Some([2.0, 0.0, 0.0]);
        assert!(bad.problem().unwrap().contains("tint of Gussets"));
        let mut bad = review;
        bad.pointer = Some(Pointer {
            origin: Some([0.0; 3]),
            target: [0.0; 3],
            part: None,
            by: None,
        });
        assert!(bad.problem().unwrap().contains("pointer"));
        let long = Review {
            pointer: Some(Pointer {
                target: [0.0; 3],
                origin: None,
                part: Some("x".repeat(1025)),
                by: None,
            }),
            ..Review::default()
        };
        assert!(long.problem().unwrap().contains("1024 characters"));
    }

    #[test]
    fn a_group_override_reaches_every_part_within_unless_the_part_sets_that_field() {
        let review: Review = serde_json::from_str(
            r#"{"parts":{
                "Gearbox":{"hidden":true,"tint":[0,0,1]},
                "Gearbox/Shafts/Input":{"hidden":false},
                "Gearbox/Shafts":{"highlighted":true}}}"#,
        )
        .unwrap();
        let housing = review.look_of("Gearbox/Housing");
        assert!(housing.hidden && !housing.highlighted);
        assert_eq!(housing.tint, Some([0.0, 0.0, 1.0]));
        let input = review.look_of("Gearbox/Shafts/Input");
        assert!(
            !input.hidden,
            "its own hidden:false wins over the gearbox's"
        );
        assert!(input.highlighted, "from Shafts");
        assert_eq!(input.tint, Some([0.0, 0.0, 1.0]), "from Gearbox");
        assert!(review.look_of("Gearbox/Shafts/Output").hidden);
        // A name that only starts like a group is not in it.
        assert_eq!(review.look_of("Gearboxes"), PartLook::default());
        assert_eq!(review.look_of("Stand"), PartLook::default());
        assert_eq!(parent_path("A/B/C"), Some("A/B"));

        // Hiding a group takes back what parts within set; showing a part in a hidden group
        // sets only that part.
        let mut review = review;
        review.set_hidden("Gearbox", false);
        assert!(!review.look_of("Gearbox/Housing").hidden);
        assert_eq!(
            review.parts.get("Gearbox/Shafts/Input"),
            None,
            "emptied, dropped"
        );
        review.set_hidden("Gearbox", true);
        review.set_hidden("Gearbox/Shafts/Input", false);
        assert!(review.look_of("Gearbox/Housing").hidden);
        assert!(!review.look_of("Gearbox/Shafts/Input").hidden);
        review.set_highlighted("Gearbox/Shafts", false);
        assert_eq!(review.parts.get("Gearbox/Shafts"), None);

        // Isolating shows the part alone, whatever was hidden before.
        let mut review = Review::default();
        review.set_hidden("Gearbox/Shafts/Input", true);
        review.isolate("Gearbox/Shafts", ["Gearbox", "Stand"]);
        assert!(!review.look_of("Gearbox/Shafts/Input").hidden);
        assert!(!review.look_of("Gearbox/Shafts/Output").hidden);
        assert!(review.look_of("Gearbox/Housing").hidden);
        assert!(review.look_of("Stand/Foot").hidden);
        review.isolate("Stand", ["Gearbox", "Stand"]);
        assert!(!review.look_of("Stand/Foot").hidden);
        assert!(review.look_of("Gearbox/Shafts/Input").hidden);
        assert_eq!(parent_path("A"), None);
    }
}
