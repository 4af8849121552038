//! CLIP sizes, read from a Hugging Face `config.json` or taken from a preset.
//!
//! HF writes only the values that differ from its class defaults, so every missing field falls
//! back to the default of `CLIPTextConfig` / `CLIPVisionConfig` (the ViT-B/32 text and vision
//! towers). Unknown keys are ignored on purpose: HF configs carry many training-only fields.

use serde::Deserialize;

use super::ClipError;

/// The MLP nonlinearity (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// x * sigmoid(1.702 x), the original OpenAI CLIP.
    QuickGelu,
    /// Exact (erf) GELU.
    Gelu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::Gelu),
            _ => None,
        }
    }
}

/// One transformer tower.
#[derive(Clone, Debug, PartialEq)]
pub struct TowerConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub tower: TowerConfig,
    pub vocab_size: usize,
    /// Context length (77 for every released CLIP).
    pub max_positions: usize,
    /// The token the text is pooled at. HF: with `eos_token_id == 2` (configs written before
    /// transformers PR #24773) the pooled position is that of the highest token id; otherwise the
    /// first position holding `eos_token_id`.
    pub eos_token_id: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub tower: TowerConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
}

impl VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    /// Size of the shared embedding space.
    pub projection_dim: usize,
}

/// Released architectures (OpenAI CLIP on the Hugging Face hub).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `openai/clip-vit-base-patch32`.
    VitB32,
    /// `openai/clip-vit-base-patch16`.
    VitB16,
    /// `openai/clip-vit-large-patch14`.
    VitL14,
}

impl Preset {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "vit-b/32" | "vit-b-32" | "vitb32" => Some(Self::VitB32),
            "vit-b/16" | "vit-b-16" | "vitb16" => Some(Self::VitB16),
            "vit-l/14" | "vit-l-14" | "vitl14" => Some(Self::VitL14),
            _ => None,
        }
    }
}

fn tower(hidden: usize, layers: usize, heads: usize) -> TowerConfig {
    TowerConfig {
        hidden_size: hidden,
        intermediate_size: 4 * hidden,
        num_layers: layers,
        num_heads: heads,
        activation: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
    }
}

impl ClipConfig {
    pub fn preset(preset: Preset) -> Self {
        let (text, vision, patch, projection) = match preset {
            Preset::VitB32 => (tower(512, 12, 8), tower(768, 12, 12), 32, 512),
            Preset::VitB16 => (tower(512, 12, 8), tower(768, 12, 12), 16, 512),
            Preset::VitL14 => (tower(768, 12, 12), tower(1024, 24, 16), 14, 768),
        };
        Self {
            text: TextConfig {
                tower: text,
                vocab_size: 49408,
                max_positions: 77,
                eos_token_id: 49407,
            },
            vision: VisionConfig {
                tower: vision,
                image_size: 224,
                patch_size: patch,
                num_channels: 3,
            },
            projection_dim: projection,
        }
    }

    /// Parses and checks a Hugging Face CLIP `config.json`.
    pub fn from_hf_json(text: &str, file: &str) -> Result<Self, ClipError> {
        let raw: HfConfig = serde_json::from_str(text).map_err(|source| ClipError::ConfigJson {
            file: file.to_string(),
            source,
        })?;
        let bad = |message: String| ClipError::Config {
            file: file.to_string(),
            message,
        };
        let t = raw.text_config;
        let v = raw.vision_config;
        let activation = |key: &str, name: &str| {
            Activation::parse(name).ok_or_else(|| {
                bad(format!(
                    "{key}.hidden_act = {name:?}: expected \"quick_gelu\" or \"gelu\""
                ))
            })
        };
        let config = Self {
            text: TextConfig {
                tower: TowerConfig {
                    hidden_size: t.hidden_size,
                    intermediate_size: t.intermediate_size,
                    num_layers: t.num_hidden_layers,
                    num_heads: t.num_attention_heads,
                    activation: activation("text_config", &t.hidden_act)?,
                    layer_norm_eps: t.layer_norm_eps,
                },
                vocab_size: t.vocab_size,
                max_positions: t.max_position_embeddings,
                eos_token_id: t.eos_token_id,
            },
            vision: VisionConfig {
                tower: TowerConfig {
                    hidden_size: v.hidden_size,
                    intermediate_size: v.intermediate_size,
                    num_layers: v.num_hidden_layers,
                    num_heads: v.num_attention_heads,
                    activation: activation("vision_config", &v.hidden_act)?,
                    layer_norm_eps: v.layer_norm_eps,
                },
                image_size: v.image_size,
                patch_size: v.patch_size,
                num_channels: v.num_channels,
            },
            projection_dim: raw.projection_dim,
        };
        config.validate().map_err(|e| bad(e.0))?;
        Ok(config)
    }

    /// Sizes that the model code relies on.
    pub fn validate(&self) -> Result<(), BadSizes> {
        for (name, t) in [
            ("text_config", &self.text.tower),
            ("vision_config", &self.vision.tower),
        ] {
            if t.hidden_size == 0 || t.num_heads == 0 || t.hidden_size % t.num_heads != 0 {
                return Err(BadSizes(format!(
                    "{name}: hidden_size {} is not a positive multiple of num_attention_heads {}",
                    t.hidden_size, t.num_heads
                )));
            }
            if t.intermediate_size == 0 || t.num_layers == 0 {
                return Err(BadSizes(format!(
                    "{name}: intermediate_size and num_hidden_layers must be above zero"
                )));
            }
            if !(t.layer_norm_eps.is_finite() && t.layer_norm_eps > 0.0) {
                return Err(BadSizes(format!(
                    "{name}: layer_norm_eps must be above zero, got {}",
                    t.layer_norm_eps
                )));
            }
        }
        let v = &self.vision;
        if v.patch_size == 0 || v.image_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(BadSizes(format!(
                "vision_config: image_size {} is not a positive multiple of patch_size {}",
                v.image_size, v.patch_size
            )));
        }
        if v.num_channels != 3 {
            return Err(BadSizes(format!(
                "vision_config: num_channels {} (only RGB, 3, is supported)",
                v.num_channels
            )));
        }
        if self.text.max_positions < 2 || self.text.vocab_size == 0 || self.projection_dim == 0 {
            return Err(BadSizes(
                "text_config: max_position_embeddings must be at least 2, vocab_size and \
                 projection_dim above zero"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    text_config: HfText,
    #[serde(default)]
    vision_config: HfVision,
    #[serde(default = "default_projection")]
    projection_dim: usize,
}

fn default_projection() -> usize {
    512
}

#[derive(Deserialize)]
#[serde(default)]
struct HfText {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    hidden_act: String,
    layer_norm_eps: f64,
    eos_token_id: u32,
}

impl Default for HfText {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: 49407,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct HfVision {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for HfVision {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_vit_b32() {
        let config = ClipConfig::from_hf_json("{}", "config.json").unwrap();
        assert_eq!(config, ClipConfig::preset(Preset::VitB32));
    }

    #[test]
    fn rejects_unknown_activation_and_bad_sizes() {
        let err =
            ClipConfig::from_hf_json(r#"{"vision_config": {"hidden_act": "relu"}}"#, "c.json")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("vision_config.hidden_act") && err.contains("c.json"),
            "{err}"
        );
        let err = ClipConfig::from_hf_json(r#"{"vision_config": {"patch_size": 30}}"#, "c.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("patch_size 30"), "{err}");
    }
}

/// Sizes in a CLIP config that the model code cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSizes(pub String);
