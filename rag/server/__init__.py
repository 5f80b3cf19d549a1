"""`rag serve`: one process that loads the models once and serves collections (indexes) over HTTP,
as an OpenAI-compatible chat whose answers keep their sources and a native REST API, behind keys.
The contract is docs/api.md."""
