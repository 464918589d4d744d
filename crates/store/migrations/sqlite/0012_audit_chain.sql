-- Tamper evidence for the audit log: each entry carries SHA-256(previous entry's hash || the
-- entry), so editing or deleting an entry breaks every link after it (`postern audit verify`).
-- Entries written before this migration have no link; the chain starts after them.
ALTER TABLE audit ADD COLUMN hash BLOB;
