//! Remote write: per-endpoint sharded queue, request encoding (protobuf + snappy), sending and retries.
