//! Uploading model files from the browser with progress: `fetch` cannot report how much of a
//! request body has gone, `XMLHttpRequest` can. Browser only.

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::wasm_bindgen::closure::Closure;
use parallax_core::api::{ErrorBody, Model};
use web_sys::{FormData, HtmlInputElement, ProgressEvent, XmlHttpRequest};

/// Sends the files chosen in `input` to `POST /v1/models` (the session cookie authenticates).
/// `progress` goes from 0 to 1 while the bytes go; `finished` gets the new catalog entry or
/// the message to show.
pub(crate) fn send(
    input: &HtmlInputElement,
    progress: RwSignal<Option<f64>>,
    finished: impl Fn(Result<Model, String>) + 'static,
) -> Result<(), String> {
    let files = input.files().ok_or("no files were chosen")?;
    let form = FormData::new().map_err(|e| format!("{e:?}"))?;
    for i in 0..files.length() {
        if let Some(file) = files.get(i) {
            form.append_with_blob_and_filename("file", &file, &file.name())
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    let request = XmlHttpRequest::new().map_err(|e| format!("{e:?}"))?;
    request
        .open("POST", "/v1/models")
        .map_err(|e| format!("{e:?}"))?;
    let on_progress = Closure::<dyn Fn(ProgressEvent)>::new(move |event: ProgressEvent| {
        if event.length_computable() && event.total() > 0.0 {
            progress.set(Some(event.loaded() / event.total()));
        }
    });
    request
        .upload()
        .map_err(|e| format!("{e:?}"))?
        .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    let answered = request.clone();
    let on_end = Closure::<dyn Fn()>::new(move || {
        progress.set(None);
        let status = answered.status().unwrap_or(0);
        let text = answered.response_text().ok().flatten().unwrap_or_default();
        finished(if status == 0 {
            Err("The upload did not get through: the coordinator could not be reached.".into())
        } else if (200..300).contains(&status) {
            serde_json::from_str::<Model>(&text).map_err(|e| {
                format!("The coordinator's answer to the upload was not understood ({e}).")
            })
        } else {
            Err(serde_json::from_str::<ErrorBody>(&text).map_or_else(
                |_| format!("The upload was refused ({status})."),
                |body| body.error.message,
            ))
        });
    });
    request.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
    progress.set(Some(0.0));
    request
        .send_with_opt_form_data(Some(&form))
        .map_err(|e| format!("{e:?}"))?;
    // The request holds the handlers until it ends; they are small and live once per upload.
    on_progress.forget();
    on_end.forget();
    Ok(())
}
