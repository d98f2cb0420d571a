module socketlab/examples/naive

go 1.22
