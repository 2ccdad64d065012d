DROP TABLE click_hours; DROP TABLE click_days; DROP TABLE click_day_values;
DROP INDEX clicks_by_visitor;
