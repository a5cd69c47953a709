module goro.bench/extra

go 1.19
