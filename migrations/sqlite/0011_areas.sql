-- Sites larger than one community (issue 16, item 7): where each grid
-- belongs. A grid is named as elders and stewards name it (elders.grid,
-- stewards.grid); a grid with no row here belongs to no community, and
-- only site-wide supervisors see it.
CREATE TABLE areas (
    grid      TEXT PRIMARY KEY,
    community TEXT NOT NULL,
    district  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX areas_community ON areas (community);
CREATE INDEX areas_district ON areas (district);

-- What a supervisor sees: NULL the whole site, else 'community:<name>' or
-- 'district:<name>'. Stewards and admins have none.
ALTER TABLE users ADD COLUMN scope TEXT;
