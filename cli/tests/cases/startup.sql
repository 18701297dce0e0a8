-- What clients send on connect and in common tools.
select @@version_comment limit 1;
SELECT @@version, @@session.autocommit AS ac;
SELECT DATABASE();
SHOW DATABASES;
USE oceanbase;
SHOW VARIABLES LIKE 'version%';
SHOW WARNINGS;
SET NAMES utf8mb4;
SET autocommit = 1;
SET SESSION sql_mode = 'ANSI', @@session.time_zone = '+08:00'; SELECT @@autocommit, @@sql_mode, @@time_zone;
SET no_such_variable = 1;
SET wait_timeout = 5;
SET GLOBAL sql_mode = '';
USE nowhere;
