-- ALTER SYSTEM SET with OceanBase's validations.
ALTER SYSTEM SET backup_backup_dest = 'file:///backup/copy';
ALTER SYSTEM SET backup_dest = 'file://relative';
ALTER SYSTEM SET backup_dest = 'file:///backup/main?x=1';
ALTER SYSTEM SET backup_dest = 'oss://bucket/p?host=h';
ALTER SYSTEM SET backup_dest = 'file:///backup/main';
ALTER SYSTEM SET backup_backup_dest = 'file:///backup/main';
ALTER SYSTEM SET backup_backup_dest = 'file:///backup/copy';
ALTER SYSTEM SET backup_dest = 'file:///backup/elsewhere';
ALTER SYSTEM SET backup_dest_option = 'log_archive_piece_switch_interval=1d&recovery_window=7d';
ALTER SYSTEM SET backup_dest_option = 'backup_copies=2';
ALTER SYSTEM SET backup_dest_option = 'colour=red';
ALTER SYSTEM SET backup_backup_dest_option = 'log_archive_piece_switch_interval=1d';
ALTER SYSTEM SET backup_compression = 'zstd:3';
ALTER SYSTEM SET backup_compression = 'lz4';
ALTER SYSTEM SET no_such_parameter = 'x';
