//! The `Embeddings` port: sentences as vectors whose closeness is closeness in meaning
//! (Bedrock Titan Text Embeddings v2 in AWS; any OpenAI-compatible `/v1/embeddings`
//! endpoint, which covers Ollama and the embedding engine the embedded platform runs).
//! Knowledge retrieval and the local engine's understanding of customers use it; without
//! one, both work on words alone.

use async_trait::async_trait;

/// What a text is, for models that embed questions and passages differently (E5 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A question, or anything compared with other short texts.
    Query,
    /// A passage to be found.
    Passage,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("{0}")]
    Invalid(String),
    #[error("the embedding model is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the embedding model failed")]
    Backend(#[source] anyhow::Error),
}

/// How many texts one call may carry.
pub const MAX_BATCH: usize = 64;

#[async_trait]
pub trait Embeddings: Send + Sync {
    /// Which model embeds (vectors of different models are not comparable).
    fn model(&self) -> &str;

    /// One unit-length vector per text, in order.
    async fn embed(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EmbeddingError>;
}

/// Embeds any number of texts, [`MAX_BATCH`] at a time.
pub async fn embed_all(
    embeddings: &dyn Embeddings,
    texts: &[String],
    kind: TextKind,
) -> Result<Vec<Vec<f32>>, EmbeddingError> {
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(MAX_BATCH) {
        let embedded = embeddings.embed(batch, kind).await?;
        if embedded.len() != batch.len() {
            return Err(EmbeddingError::Backend(anyhow::anyhow!(
                "asked for {} vectors, got {}",
                batch.len(),
                embedded.len()
            )));
        }
        vectors.extend(embedded);
    }
    Ok(vectors)
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalized(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// The cosine of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vectors_compare_by_cosine() {
        let a = normalized(vec![3.0, 4.0]);
        assert!((a[0] - 0.6).abs() < 1e-6 && (a[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(normalized(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
