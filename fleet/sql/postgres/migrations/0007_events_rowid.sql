-- 0007: nothing to do on PostgreSQL. SQLite's 0007 drops AUTOINCREMENT from its event log
-- (issue 20); PostgreSQL's seq is an identity column already. The file keeps the two backends'
-- schema versions in step, so version N names the same features in both stores.
SELECT 1;
