-- Runs once, when the container initialises an empty data directory.
-- The initial Alembic migration also creates `vector` (IF NOT EXISTS), so either order works.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
