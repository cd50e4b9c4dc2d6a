module github.com/ournsq/nsq

go 1.26

require (
	github.com/BurntSushi/toml v1.3.2
	github.com/julienschmidt/httprouter v1.3.0
	github.com/klauspost/compress v1.20.3
	github.com/mreiferson/go-options v1.0.0
	github.com/nsqio/go-diskqueue v1.1.0
	github.com/nsqio/go-nsq v1.1.0
)

require github.com/golang/snappy v0.0.1 // indirect
