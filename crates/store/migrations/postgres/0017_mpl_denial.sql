-- The decision trace of a refused message: which check refused it and why, as JSON
-- (postern_core::mpl::Denial). NULL for messages nothing refused.
ALTER TABLE mpl ADD COLUMN denial TEXT;
