package nodeplugin

//go:generate cp ../../plugins/proto/publisher.proto proto/publisher.proto
