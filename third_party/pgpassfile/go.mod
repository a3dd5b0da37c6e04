module github.com/jackc/pgpassfile

go 1.12
