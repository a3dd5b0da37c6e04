module github.com/control-plane/cp

go 1.26.0
