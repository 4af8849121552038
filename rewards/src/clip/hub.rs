//! Hugging Face Hub ids for CLIP models: `hf:<owner>/<name>` (as in
//! `--model hf:openai/clip-vit-base-patch32` or `model_path = "hf:..."`) names a model on the
//! Hub instead of a local folder. It is looked up in the Hugging Face cache first, laid out as
//! Python's `huggingface_hub` writes it (`models--<owner>--<name>/refs/main` naming a folder
//! under `snapshots/`), so a model downloaded once by any tool works offline; otherwise the
//! files are downloaded from `$HF_ENDPOINT` (default `https://huggingface.co`, with
//! `$HF_TOKEN` for gated models) into that cache. The cache is `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ClipError;

/// What a CLIP folder needs (see [`super::ClipModel::load`]).
pub const FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "vocab.json",
    "merges.txt",
];

/// The prefix that marks a Hub id.
pub const PREFIX: &str = "hf:";

/// `model` itself when it is a path; the folder holding the Hub model when it is `hf:<id>`.
pub fn locate(model: &Path) -> Result<PathBuf, ClipError> {
    let Some(id) = model.to_str().and_then(|s| s.strip_prefix(PREFIX)) else {
        return Ok(model.to_owned());
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let cache = var("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
        .ok_or_else(|| hub_error(id, "no cache folder: set HF_HUB_CACHE or HOME".into()))?;
    let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into());
    resolve(id, &cache, &endpoint, var("HF_TOKEN").as_deref())
}

fn hub_error(id: &str, message: String) -> ClipError {
    ClipError::Hub {
        id: id.to_owned(),
        message,
    }
}

/// The cached snapshot of `id` under `cache`, downloading the [`FILES`] from `endpoint` when
/// the cache lacks any of them. A download goes to a temporary name and is renamed when
/// complete, so an interrupted one is never taken for a model.
pub fn resolve(
    id: &str,
    cache: &Path,
    endpoint: &str,
    token: Option<&str>,
) -> Result<PathBuf, ClipError> {
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && part != "."
            && part != ".."
    };
    let Some((owner, name)) = id.split_once('/').filter(|(o, n)| valid(o) && valid(n)) else {
        return Err(hub_error(
            id,
            "expected hf:<owner>/<name>, such as hf:openai/clip-vit-base-patch32".into(),
        ));
    };
    let repo = cache.join(format!("models--{owner}--{name}"));
    let complete = |dir: &Path| FILES.iter().all(|f| dir.join(f).is_file());
    if let Ok(revision) = std::fs::read_to_string(repo.join("refs/main")) {
        let snapshot = repo.join("snapshots").join(revision.trim());
        if complete(&snapshot) {
            return Ok(snapshot);
        }
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(1800)))
        .http_status_as_error(false)
        .build()
        .into();
    let unreachable =
        |url: &str, source: Box<dyn std::error::Error + Send + Sync>| ClipError::HubUnreachable {
            id: id.to_owned(),
            cache: repo.clone(),
            url: url.to_owned(),
            source,
        };
    let io = |file: &Path, source: std::io::Error| ClipError::Write {
        file: file.to_owned(),
        source,
    };
    // The snapshot is named by the commit the first reply reports; each file streams to a
    // temporary name on disk (a checkpoint can be larger than the robot's free memory) and is
    // renamed when complete. `refs/main`, written last, is what makes the snapshot count.
    let mut snapshot: Option<PathBuf> = None;
    for file in FILES {
        let url = format!(
            "{}/{id}/resolve/main/{file}",
            endpoint.trim_end_matches('/')
        );
        let mut request = agent.get(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| unreachable(&url, Box::new(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClipError::HubStatus {
                id: id.to_owned(),
                cache: repo.clone(),
                url,
                status: status.as_u16(),
            });
        }
        let dir = match &snapshot {
            Some(dir) => dir.clone(),
            None => {
                let revision = response
                    .headers()
                    .get("x-repo-commit")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| valid(v))
                    .unwrap_or("main");
                let dir = repo.join("snapshots").join(revision);
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                snapshot = Some(dir.clone());
                dir
            }
        };
        let path = dir.join(file);
        let partial = dir.join(format!("{file}.partial"));
        let mut out = std::fs::File::create(&partial).map_err(|e| io(&partial, e))?;
        std::io::copy(
            &mut response.body_mut().with_config().limit(u64::MAX).reader(),
            &mut out,
        )
        .map_err(|e| unreachable(&url, Box::new(e)))?;
        drop(out);
        std::fs::rename(&partial, &path).map_err(|e| io(&path, e))?;
    }
    let snapshot = snapshot.expect("FILES is not empty");
    let revision = snapshot
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("main")
        .to_owned();
    let refs = repo.join("refs");
    std::fs::create_dir_all(&refs).map_err(|e| io(&refs, e))?;
    std::fs::write(refs.join("main"), &revision).map_err(|e| io(&refs, e))?;
    Ok(snapshot)
}
