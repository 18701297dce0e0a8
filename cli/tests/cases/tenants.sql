-- Tenants and users from SQL.
CREATE TENANT t1 SOURCE = 'dir:///srv/t1' COMMENT 'first';
CREATE TENANT IF NOT EXISTS t1 SOURCE 'dir:///srv/other';
CREATE TENANT t1 SOURCE 'dir:///srv/t1';
CREATE TENANT t2 SOURCE 'file:///srv/t2';
CREATE TENANT bad-name SOURCE 'dir:///srv/x';
SHOW TENANTS;
DROP TENANT IF EXISTS nope;
DROP TENANT nope;
DROP TENANT sys;
CREATE USER 'alice'@'%' IDENTIFIED BY 'pw';
CREATE USER alice IDENTIFIED BY 'pw';
DROP USER IF EXISTS ghost;
DROP USER alice;
