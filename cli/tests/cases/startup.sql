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
USE nowhere;
