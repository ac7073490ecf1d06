//! The fixed model catalog served by the list/get model endpoints (native
//! and OpenAI-compatible), with the fields the real API returns.

use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub name: &'static str,
    pub base_model_id: &'static str,
    pub version: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub input_token_limit: u32,
    pub output_token_limit: u32,
    pub supported_generation_methods: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

const GENERATE_METHODS: &[&str] = &[
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];

pub static MODELS: [ModelInfo; 3] = [
    ModelInfo {
        name: "models/gemini-2.5-flash",
        base_model_id: "gemini-2.5-flash",
        version: "001",
        display_name: "Gemini 2.5 Flash",
        description: "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that \
                      supports up to 1 million tokens, released in June of 2025.",
        input_token_limit: 1_048_576,
        output_token_limit: 65_536,
        supported_generation_methods: GENERATE_METHODS,
        temperature: Some(1.0),
        top_p: Some(0.95),
        top_k: Some(64),
        max_temperature: Some(2.0),
        thinking: Some(true),
    },
    ModelInfo {
        name: "models/gemini-2.5-pro",
        base_model_id: "gemini-2.5-pro",
        version: "2.5",
        display_name: "Gemini 2.5 Pro",
        description: "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        input_token_limit: 1_048_576,
        output_token_limit: 65_536,
        supported_generation_methods: GENERATE_METHODS,
        temperature: Some(1.0),
        top_p: Some(0.95),
        top_k: Some(64),
        max_temperature: Some(2.0),
        thinking: Some(true),
    },
    ModelInfo {
        name: "models/text-embedding-004",
        base_model_id: "text-embedding-004",
        version: "004",
        display_name: "Text Embedding 004",
        description: "Obtain a distributed representation of a text.",
        input_token_limit: 2048,
        output_token_limit: 1,
        supported_generation_methods: &["embedContent"],
        temperature: None,
        top_p: None,
        top_k: None,
        max_temperature: None,
        thinking: None,
    },
];

/// Looks a model up by id, with or without the `models/` prefix.
pub fn find(id: &str) -> Option<&'static ModelInfo> {
    let id = id.strip_prefix("models/").unwrap_or(id);
    MODELS.iter().find(|m| m.base_model_id == id)
}
