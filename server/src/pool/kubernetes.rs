//! Render hosts as Kubernetes pods (feature `kubernetes`, issue 36; in progress): what the
//! provisioner asks the API for and how it reads the answers. A host's pod is made from the
//! operator's `PodTemplate` (`deploy/base/render-host-template.yaml`): named after the host,
//! labelled with its size and owner, told its size and name, and given the Secret of its own
//! credential; a pod that cannot start says why ([`why_not_starting`]).
//!
//! Not built yet: creating, watching and deleting the pods from the launcher, adopting them on
//! start, and the Lease that makes one replica at a time the one that provisions.

use k8s_openapi::api::core::v1::{Pod, PodTemplate};
use parallax_core::session::{HostId, SessionSize};

/// The label every render host pod has, and the ones the provisioner adds.
pub const COMPONENT: (&str, &str) = ("app.kubernetes.io/component", "render-host");
pub const SIZE_LABEL: &str = "parallax.dev/size";
pub const OWNER_LABEL: &str = "parallax.dev/owner";
pub const HOST_LABEL: &str = "parallax.dev/host";

/// The name of `host`'s pod, and of the Secret that holds its credential: a DNS label (lower
/// case letters, digits and `-`, at most 63 characters).
pub fn pod_name(host: &HostId) -> String {
    let mut name: String = format!("parallax-host-{host}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// `host`'s pod, of `size`, for the coordinator `owner`, from the operator's `template`: its
/// labels, its `--size` and `--host-id`, and its credential's Secret. An error says what the
/// template lacks.
pub fn host_pod(
    template: &PodTemplate,
    host: &HostId,
    size: SessionSize,
    owner: &str,
) -> Result<Pod, String> {
    let spec = template
        .template
        .clone()
        .ok_or("the pod template has no `template`")?;
    let mut metadata = spec.metadata.unwrap_or_default();
    let mut pod_spec = spec.spec.ok_or("the pod template has no pod spec")?;
    let name = pod_name(host);
    metadata.name = Some(name.clone());
    let labels = metadata.labels.get_or_insert_with(Default::default);
    labels.insert(COMPONENT.0.into(), COMPONENT.1.into());
    labels.insert(SIZE_LABEL.into(), size.as_str().to_ascii_lowercase());
    labels.insert(OWNER_LABEL.into(), owner.into());
    labels.insert(HOST_LABEL.into(), name.clone());
    let container = pod_spec
        .containers
        .iter_mut()
        .find(|c| c.name == "render-host")
        .ok_or("the pod template has no container named `render-host`")?;
    let mut args: Vec<String> = Vec::new();
    let mut given = container.args.take().unwrap_or_default().into_iter();
    // The template's arguments, with its `--size` and any `--host-id` replaced by this host's.
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--size" | "--host-id" => {
                given.next();
            }
            _ => args.push(arg),
        }
    }
    args.extend([
        "--size".into(),
        size.as_str().into(),
        "--host-id".into(),
        host.to_string(),
    ]);
    container.args = Some(args);
    let credential = pod_spec
        .volumes
        .iter_mut()
        .flatten()
        .find(|v| v.name == "credential")
        .and_then(|v| v.secret.as_mut())
        .ok_or("the pod template has no Secret volume named `credential`")?;
    credential.secret_name = Some(name);
    Ok(Pod {
        metadata,
        spec: Some(pod_spec),
        status: None,
    })
}

/// Why `pod` cannot start, if it cannot: unschedulable, its image not pulled, its container not
/// made, or ended (a host's pod never restarts, so a crash ends it as `Failed`).
pub fn why_not_starting(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        let why = status
            .reason
            .as_deref()
            .or(status.message.as_deref())
            .unwrap_or("its container exited");
        return Some(format!("the render host pod failed: {why}"));
    }
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
        {
            let why = condition.message.as_deref().unwrap_or("no node fits it");
            return Some(format!("the render host pod cannot be scheduled: {why}"));
        }
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        if let Some(
            reason @ ("ErrImagePull"
            | "ImagePullBackOff"
            | "InvalidImageName"
            | "ErrImageNeverPull"
            | "CrashLoopBackOff"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError"),
        ) = waiting.reason.as_deref()
        {
            let detail = waiting.message.as_deref().unwrap_or_default();
            return Some(
                format!("the render host pod cannot start: {reason} {detail}")
                    .trim_end()
                    .to_string(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The template as deploy/ ships it.
    fn template() -> PodTemplate {
        let text = include_str!("../../../deploy/base/render-host-template.yaml");
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_host_pod_is_the_template_named_labelled_sized_and_given_its_own_secret() {
        let host = HostId::new("standard-7");
        let pod = host_pod(&template(), &host, SessionSize::Premium, "parallax-0").unwrap();
        let pod = serde_json::to_value(&pod).unwrap();
        assert_eq!(pod["metadata"]["name"], "parallax-host-standard-7");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/component"], "render-host");
        assert_eq!(labels[SIZE_LABEL], "premium");
        assert_eq!(labels[OWNER_LABEL], "parallax-0");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["args"],
            json!([
                "render-host",
                "--size",
                "Premium",
                "--host-id",
                "standard-7"
            ])
        );
        // The template's resources and security stay as the operator wrote them.
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert!(container["resources"]["requests"]["cpu"].is_string());
        let secret = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "credential")
            .unwrap();
        assert_eq!(secret["secret"]["secretName"], "parallax-host-standard-7");
    }

    #[test]
    fn a_template_without_what_the_provisioner_needs_is_refused_with_the_reason() {
        let mut bare = template();
        bare.template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .volumes = None;
        let refused = host_pod(&bare, &HostId::new("h"), SessionSize::Standard, "o");
        assert!(refused.unwrap_err().contains("credential"));
    }

    #[test]
    fn pod_names_are_dns_labels() {
        assert_eq!(
            pod_name(&HostId::new("Standard_1")),
            "parallax-host-standard-1"
        );
        let long = pod_name(&HostId::new("x".repeat(80)));
        assert!(long.len() <= 63 && !long.ends_with('-'));
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "status": status })).unwrap()
    }

    #[test]
    fn a_pod_that_cannot_start_says_why_and_one_starting_does_not() {
        let unschedulable = pod(json!({ "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }] }));
        assert!(
            why_not_starting(&unschedulable)
                .unwrap()
                .contains("cannot be scheduled: 0/3 nodes are available")
        );
        let pulling = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "render-host", "image": "parallax", "imageID": "", "ready": false,
            "restartCount": 0, "state": { "waiting": { "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"parallax\"" } } }] }));
        assert!(
            why_not_starting(&pulling)
                .unwrap()
                .contains("ImagePullBackOff")
        );
        let failed = pod(json!({ "phase": "Failed", "reason": "Evicted" }));
        assert!(why_not_starting(&failed).unwrap().contains("Evicted"));
        let creating = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "render-host", "image": "parallax", "imageID": "", "ready": false,
            "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
        assert_eq!(why_not_starting(&creating), None);
        assert_eq!(why_not_starting(&pod(json!({ "phase": "Running" }))), None);
    }

    /// The provisioner's requests go to the API server as kube sends them: a stand-in server
    /// (tower-test's mock) sees the pod created in the namespace, with the host's labels.
    #[tokio::test]
    async fn a_host_pod_is_created_through_the_api() {
        use http::{Method, Request, Response, StatusCode};
        use kube::api::{Api, PostParams};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "parallax");
        let api_server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri().path(), "/api/v1/namespaces/parallax/pods");
            let body = request.into_body().collect_bytes().await.unwrap();
            let mut sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent["metadata"]["labels"][SIZE_LABEL], "standard");
            sent["metadata"]["uid"] = json!("a-uid");
            reply.send_response(
                Response::builder()
                    .status(StatusCode::CREATED)
                    .body(Body::from(serde_json::to_vec(&sent).unwrap()))
                    .unwrap(),
            );
        });
        let wanted = host_pod(
            &template(),
            &HostId::new("standard-1"),
            SessionSize::Standard,
            "parallax-0",
        )
        .unwrap();
        let made = Api::<Pod>::namespaced(client, "parallax")
            .create(&PostParams::default(), &wanted)
            .await
            .unwrap();
        assert_eq!(made.metadata.uid.as_deref(), Some("a-uid"));
        tokio::time::timeout(std::time::Duration::from_secs(1), api_server)
            .await
            .unwrap()
            .unwrap();
    }
}
