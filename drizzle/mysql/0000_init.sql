CREATE TABLE `owners` (
	`id` int AUTO_INCREMENT NOT NULL,
	`subject` varbinary(1024) NOT NULL,
	`name` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	CONSTRAINT `owners_id` PRIMARY KEY(`id`),
	CONSTRAINT `owners_subject_unique` UNIQUE(`subject`)
);
--> statement-breakpoint
CREATE TABLE `resources` (
	`id` int AUTO_INCREMENT NOT NULL,
	`owner_id` int NOT NULL,
	`name` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	CONSTRAINT `resources_id` PRIMARY KEY(`id`),
	CONSTRAINT `resources_owner_id_name_unique` UNIQUE(`owner_id`,`name`)
);
--> statement-breakpoint
ALTER TABLE `resources` ADD CONSTRAINT `resources_owner_id_owners_id_fk` FOREIGN KEY (`owner_id`) REFERENCES `owners`(`id`) ON DELETE cascade ON UPDATE no action;