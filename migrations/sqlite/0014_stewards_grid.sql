-- The planner finds each elder's grid steward (dispatcher/src/store/
-- care_sql.rs, elders_to_plan) and a round the grid's unassigned visits:
-- without this index each elder's lookup read every steward. Measured in
-- docs/BENCHMARKS.md (g., the care planner at 100,000 elders).
CREATE INDEX stewards_grid ON stewards (grid);
