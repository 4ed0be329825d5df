//! DynamoDB store (in progress).
use aws_sdk_dynamodb::Client;

#[derive(Debug, Clone)]
pub struct TableNames {
    pub main: String,
    pub sessions: String,
}

pub struct DynamoStore {
    _client: Client,
    _tables: TableNames,
}

pub async fn create_tables(_client: &Client, _tables: &TableNames) -> crate::StoreResult<()> {
    Ok(())
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            _client: client,
            _tables: tables,
        }
    }
}
