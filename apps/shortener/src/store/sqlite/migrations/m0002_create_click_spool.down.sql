DROP TABLE click_spool;
