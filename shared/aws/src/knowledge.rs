//! `KnowledgeBase` on an Amazon Bedrock Knowledge Base with an S3 data source over the
//! platform bucket. Documents stay where the agents API stored them, under the tenant's
//! prefix; each is ingested directly (`IngestKnowledgeBaseDocuments`) with its tenant,
//! agent, id and title as metadata, so no data-source sync ever runs across tenants, and
//! every retrieval is filtered on tenant and agent. What a scope holds is kept in the table.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_bedrockagent::error::DisplayErrorContext;
use aws_sdk_bedrockagent::types::{
    ContentDataSourceType, DocumentContent, DocumentIdentifier, DocumentMetadata, DocumentStatus,
    KnowledgeBaseDocument, MetadataAttribute, MetadataAttributeValue, MetadataSourceType, MetadataValueType, S3Content,
    S3Location,
};
use aws_sdk_bedrockagentruntime::types::{
    FilterAttribute, KnowledgeBaseQuery, KnowledgeBaseRetrievalConfiguration, KnowledgeBaseRetrievalResult,
    KnowledgeBaseVectorSearchConfiguration, RetrievalFilter,
};
use aws_smithy_types::Document;
use oratio_core::knowledge::{
    IngestionJob, IngestionStatus, KnowledgeBase, KnowledgeError, KnowledgeScope, Passage, SourceDocument,
};
use oratio_core::table::{Item, Key, Table, TableError};
use serde::{Deserialize, Serialize};

/// Which knowledge base and data source, and the bucket the documents are in.
#[derive(Debug, Clone)]
pub struct KnowledgeBaseSettings {
    pub knowledge_base_id: String,
    pub data_source_id: String,
    pub bucket: String,
}

pub struct BedrockKnowledgeBase {
    agent: aws_sdk_bedrockagent::Client,
    runtime: aws_sdk_bedrockagentruntime::Client,
    table: Arc<dyn Table>,
    settings: KnowledgeBaseSettings,
}

/// The documents a scope holds in the knowledge base, and the ingestion that put them there.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holdings {
    job: String,
    documents: Vec<Held>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    uri: String,
    title: String,
}

fn holdings_key(scope: &KnowledgeScope) -> Key {
    Key::new(format!("KNOWLEDGE#{}#{}", scope.tenant, scope.agent), "BEDROCK")
}

/// The page Bedrock records for a passage of a PDF.
const PAGE_ATTRIBUTE: &str = "x-amz-bedrock-kb-document-page-number";

fn backend(e: impl Into<anyhow::Error>) -> KnowledgeError {
    KnowledgeError::Backend(e.into())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(what: &str, e: E) -> KnowledgeError {
    KnowledgeError::Unavailable(anyhow!("{what}: {}", DisplayErrorContext(e)))
}

fn table_error(e: TableError) -> KnowledgeError {
    match e {
        TableError::Unavailable(e) => KnowledgeError::Unavailable(e),
        other => backend(other),
    }
}

fn text_attribute(key: &str, value: &str) -> Result<MetadataAttribute, KnowledgeError> {
    let value = MetadataAttributeValue::builder()
        .r#type(MetadataValueType::String)
        .string_value(value)
        .build()
        .map_err(backend)?;
    MetadataAttribute::builder().key(key).value(value).build().map_err(backend)
}

fn identifier(uri: &str) -> Result<DocumentIdentifier, KnowledgeError> {
    DocumentIdentifier::builder()
        .data_source_type(ContentDataSourceType::S3)
        .s3(S3Location::builder().uri(uri).build().map_err(backend)?)
        .build()
        .map_err(backend)
}

fn equals(key: &str, value: &str) -> Result<RetrievalFilter, KnowledgeError> {
    let attribute =
        FilterAttribute::builder().key(key).value(Document::String(value.into())).build().map_err(backend)?;
    Ok(RetrievalFilter::Equals(attribute))
}

fn metadata_text(result: &KnowledgeBaseRetrievalResult, key: &str) -> Option<String> {
    match result.metadata()?.get(key)? {
        Document::String(s) => Some(s.clone()),
        Document::Number(n) => Some(n.to_f64_lossy().to_string()),
        _ => None,
    }
}

impl BedrockKnowledgeBase {
    pub fn new(
        agent: aws_sdk_bedrockagent::Client,
        runtime: aws_sdk_bedrockagentruntime::Client,
        table: Arc<dyn Table>,
        settings: KnowledgeBaseSettings,
    ) -> Self {
        Self { agent, runtime, table, settings }
    }

    async fn holdings(&self, scope: &KnowledgeScope) -> Result<Option<Holdings>, KnowledgeError> {
        let item = self.table.get(&holdings_key(scope)).await.map_err(table_error)?;
        item.map(|item| item.record()).transpose().map_err(backend)
    }

    async fn delete_documents(&self, uris: &[String]) -> Result<(), KnowledgeError> {
        if uris.is_empty() {
            return Ok(());
        }
        let identifiers = uris.iter().map(|u| identifier(u)).collect::<Result<Vec<_>, _>>()?;
        self.agent
            .delete_knowledge_base_documents()
            .knowledge_base_id(&self.settings.knowledge_base_id)
            .data_source_id(&self.settings.data_source_id)
            .set_document_identifiers(Some(identifiers))
            .send()
            .await
            .map_err(|e| unavailable("deleting documents from the knowledge base", e))?;
        Ok(())
    }
}

#[async_trait]
impl KnowledgeBase for BedrockKnowledgeBase {
    async fn ingest(
        &self,
        scope: &KnowledgeScope,
        documents: &[SourceDocument],
    ) -> Result<IngestionJob, KnowledgeError> {
        let mut held = Vec::new();
        let mut batch = Vec::new();
        for document in documents {
            let key = document.blob_key()?;
            if !key.as_str().starts_with(&oratio_core::blob::tenant_prefix(&scope.tenant)) {
                return Err(KnowledgeError::Invalid(format!("{} is not the tenant's document", document.title)));
            }
            let uri = format!("s3://{}/{}", self.settings.bucket, key.as_str());
            let metadata = DocumentMetadata::builder()
                .r#type(MetadataSourceType::InLineAttribute)
                .inline_attributes(text_attribute("tenant_id", scope.tenant.as_str())?)
                .inline_attributes(text_attribute("agent_id", scope.agent.as_str())?)
                .inline_attributes(text_attribute("document_id", &document.document_id)?)
                .inline_attributes(text_attribute("title", &document.title)?)
                .build()
                .map_err(backend)?;
            let content = DocumentContent::builder()
                .data_source_type(ContentDataSourceType::S3)
                .s3(S3Content::builder().s3_location(S3Location::builder().uri(&uri).build().map_err(backend)?).build())
                .build()
                .map_err(backend)?;
            batch.push(KnowledgeBaseDocument::builder().metadata(metadata).content(content).build());
            held.push(Held { uri, title: document.title.clone() });
        }
        // Documents the scope no longer has are forgotten first.
        if let Some(previous) = self.holdings(scope).await? {
            let gone: Vec<String> = previous
                .documents
                .into_iter()
                .map(|d| d.uri)
                .filter(|uri| !held.iter().any(|h| &h.uri == uri))
                .collect();
            self.delete_documents(&gone).await?;
        }
        // The API takes at most 25 documents a call; an agent has at most 20.
        for chunk in batch.chunks(25) {
            self.agent
                .ingest_knowledge_base_documents()
                .knowledge_base_id(&self.settings.knowledge_base_id)
                .data_source_id(&self.settings.data_source_id)
                .set_documents(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| unavailable("ingesting documents into the knowledge base", e))?;
        }
        let job = format!("kb-{}", ulid::Ulid::new().to_string().to_lowercase());
        let holdings = Holdings { job: job.clone(), documents: held };
        let item = Item::from_record(holdings_key(scope), &holdings).map_err(backend)?;
        self.table.put(item, None).await.map_err(table_error)?;
        Ok(IngestionJob(job))
    }

    async fn status(&self, scope: &KnowledgeScope, job: &IngestionJob) -> Result<IngestionStatus, KnowledgeError> {
        let holdings = self.holdings(scope).await?.filter(|h| h.job == job.0).ok_or(KnowledgeError::UnknownJob)?;
        if holdings.documents.is_empty() {
            return Ok(IngestionStatus::Complete { documents: 0, passages: Some(0) });
        }
        let identifiers = holdings.documents.iter().map(|d| identifier(&d.uri)).collect::<Result<Vec<_>, _>>()?;
        let details = self
            .agent
            .get_knowledge_base_documents()
            .knowledge_base_id(&self.settings.knowledge_base_id)
            .data_source_id(&self.settings.data_source_id)
            .set_document_identifiers(Some(identifiers))
            .send()
            .await
            .map_err(|e| unavailable("reading the ingestion status", e))?;
        let mut indexed = 0;
        for held in &holdings.documents {
            let detail = details
                .document_details()
                .iter()
                .find(|d| d.identifier().and_then(|i| i.s3()).is_some_and(|s3| s3.uri() == held.uri));
            let Some(detail) = detail else { return Ok(IngestionStatus::InProgress) };
            match detail.status() {
                DocumentStatus::Indexed
                | DocumentStatus::PartiallyIndexed
                | DocumentStatus::MetadataPartiallyIndexed => indexed += 1,
                DocumentStatus::Failed | DocumentStatus::Ignored | DocumentStatus::NotFound => {
                    let why = detail.status_reason().unwrap_or("it could not be indexed");
                    return Ok(IngestionStatus::Failed { reason: format!("{}: {why}", held.title) });
                }
                _ => return Ok(IngestionStatus::InProgress),
            }
        }
        Ok(IngestionStatus::Complete { documents: indexed, passages: None })
    }

    async fn retrieve(
        &self,
        scope: &KnowledgeScope,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        if query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let filter = RetrievalFilter::AndAll(vec![
            equals("tenant_id", scope.tenant.as_str())?,
            equals("agent_id", scope.agent.as_str())?,
        ]);
        let search = KnowledgeBaseVectorSearchConfiguration::builder()
            .number_of_results(limit.clamp(1, 100) as i32)
            .filter(filter)
            .build();
        let answer = self
            .runtime
            .retrieve()
            .knowledge_base_id(&self.settings.knowledge_base_id)
            .retrieval_query(KnowledgeBaseQuery::builder().text(query).build())
            .retrieval_configuration(
                KnowledgeBaseRetrievalConfiguration::builder().vector_search_configuration(search).build(),
            )
            .send()
            .await
            .map_err(|e| {
                KnowledgeError::Unavailable(anyhow!(
                    "retrieving: {}",
                    aws_sdk_bedrockagentruntime::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(answer
            .retrieval_results()
            .iter()
            // The filter is the knowledge base's promise; this is ours.
            .filter(|r| metadata_text(r, "tenant_id").as_deref() == Some(scope.tenant.as_str()))
            .filter(|r| metadata_text(r, "agent_id").as_deref() == Some(scope.agent.as_str()))
            .map(|r| Passage {
                document_id: metadata_text(r, "document_id").unwrap_or_default(),
                title: metadata_text(r, "title").unwrap_or_default(),
                location: metadata_text(r, PAGE_ATTRIBUTE)
                    .map_or_else(|| "passage".to_owned(), |p| format!("page {p}")),
                text: r.content().map(|c| c.text().to_owned()).unwrap_or_default(),
                score: r.score().unwrap_or_default() as f32,
            })
            .collect())
    }

    async fn remove(&self, scope: &KnowledgeScope) -> Result<(), KnowledgeError> {
        let Some(holdings) = self.holdings(scope).await? else { return Ok(()) };
        let uris: Vec<String> = holdings.documents.into_iter().map(|d| d.uri).collect();
        self.delete_documents(&uris).await?;
        self.table.delete(&holdings_key(scope), None).await.map_err(table_error)
    }
}
