//! `ConversionSettings.json`, as Azure Remote Rendering defined it: a file beside the model,
//! `<model name>.ConversionSettings.json` or else `ConversionSettings.json` for every model in
//! the folder, that says how the model is converted. Parallax honours `scaling` (a uniform
//! factor) and `recenterToOrigin` (the bounding box's centre moved to the origin, then scaled);
//! ARR's other settings (materials, axes, collision) are read and ignored with a log line, so a
//! file written for ARR converts as it did there in size and place.

use std::path::Path;

use parallax_render::Mesh;
use serde::Deserialize;

/// The file every model in a folder uses unless it has one of its own.
pub const GENERIC: &str = "ConversionSettings.json";

/// The settings Parallax applies.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionSettings {
    #[serde(default = "one")]
    pub scaling: f32,
    #[serde(default)]
    pub recenter_to_origin: bool,
}

fn one() -> f32 {
    1.0
}

impl Default for ConversionSettings {
    fn default() -> Self {
        Self {
            scaling: 1.0,
            recenter_to_origin: false,
        }
    }
}

impl ConversionSettings {
    /// The settings for `file` in `folder`: its own file, the folder's, or none. Returns the
    /// file's name with them, for messages.
    pub fn beside(folder: &Path, file: &str) -> Result<(Self, Option<String>), String> {
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file);
        for name in [format!("{stem}.{GENERIC}"), GENERIC.to_string()] {
            match std::fs::read(folder.join(&name)) {
                Ok(bytes) => {
                    return Self::parse(&bytes)
                        .map(|settings| (settings, Some(name.clone())))
                        .map_err(|e| format!("{name}: {e}"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{name}: {e}")),
            }
        }
        Ok((Self::default(), None))
    }

    /// Reads a settings file; a value of the wrong kind, or a scale that is not a positive
    /// finite number, is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let Some(object) = value.as_object() else {
            return Err("the settings must be a JSON object".into());
        };
        let ignored: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|key| !["scaling", "recenterToOrigin"].contains(key))
            .collect();
        if !ignored.is_empty() {
            tracing::info!(?ignored, "conversion settings Parallax does not apply");
        }
        let settings: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        if !(settings.scaling.is_finite() && settings.scaling > 0.0) {
            return Err(format!(
                "scaling must be a positive number, not {}",
                settings.scaling
            ));
        }
        Ok(settings)
    }

    /// Moves and scales `mesh` as the settings say.
    pub fn apply(&self, mesh: &mut Mesh) {
        let centre = match (self.recenter_to_origin, mesh.bounds()) {
            (true, Some(bounds)) => bounds.center(),
            _ => glam::Vec3::ZERO,
        };
        if centre == glam::Vec3::ZERO && self.scaling == 1.0 {
            return;
        }
        for vertex in &mut mesh.vertices {
            let moved = (glam::Vec3::from(vertex.position) - centre) * self.scaling;
            vertex.position = moved.into();
        }
        // An instance's copy moves as the rest: its placement now starts and ends where the
        // triangles it copies and the copy were moved to.
        let moving = glam::Mat4::from_scale(glam::Vec3::splat(self.scaling))
            * glam::Mat4::from_translation(-centre);
        for instance in &mut mesh.instances {
            instance.placement = moving * instance.placement * moving.inverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_a_model_as_it_is() {
        let settings = ConversionSettings::parse(b"{}").unwrap();
        assert_eq!(settings, ConversionSettings::default());
        let mut mesh = parallax_render::samples::bracket();
        let before = mesh.clone();
        settings.apply(&mut mesh);
        assert_eq!(mesh, before);
    }

    #[test]
    fn scaling_and_recentring_move_the_bounds() {
        let settings = ConversionSettings::parse(
            br#"{"scaling": 0.001, "recenterToOrigin": true, "material-override": "x.json"}"#,
        )
        .unwrap();
        let mut mesh = parallax_render::samples::bracket();
        let size = mesh.bounds().unwrap().max - mesh.bounds().unwrap().min;
        settings.apply(&mut mesh);
        let bounds = mesh.bounds().unwrap();
        assert!(bounds.center().length() < 1e-6, "{:?}", bounds.center());
        let scaled = bounds.max - bounds.min;
        assert!(
            (scaled - size * 0.001).abs().max_element() < 1e-6,
            "{scaled}"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        for (bytes, says) in [
            (&b"[1]"[..], "object"),
            (b"{\"scaling\": -2}", "positive"),
            (b"{\"scaling\": \"big\"}", "invalid type"),
            (b"{\"recenterToOrigin\": 1}", "invalid type"),
            (b"{not json", "not JSON"),
        ] {
            let error = ConversionSettings::parse(bytes).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
